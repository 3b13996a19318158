"""Both cores without workers: helper processes share an entity's partitions.

The clinic (MariaDB legacy → PostgreSQL) with ``DIFFMIG_PARTITION_ROWS`` small, so that the
patients (120) and the appointments (300) are split, run in-process with
``DIFFMIG_LOCAL_PROCESSES`` above 1: the destination, record map, quarantine and counters
must be exactly an uninterrupted one-process run's (tests.integration.test_jobs).
"""

from __future__ import annotations

from collections import Counter

import pytest

from migrationsapp.demo.clinic import expected_destination
from migrationsapp.models import (
    AnalysisChange,
    MigrationCheckpoint,
    MigrationControl,
    MigrationStatus,
)
from migrationsapp.models.choices import CheckpointState, SessionStatus
from migrationsapp.services import leases
from migrationsapp.services.batches import UPSERT_KINDS
from migrationsapp.services.runs import RunOptions, launch_session, local_processes, start_run
from migrationsapp.services.runs.execute import execute_session
from tests.integration.test_jobs import assert_migrated, clinic  # noqa: F401 (fixture)
from tests.support.clinic_run import destination_by_key

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PARTITION_ROWS = 40  # patients: 3 partitions, appointments: 8


class Crash(BaseException):
    """The executor's process dies here (nothing below it catches a BaseException)."""


@pytest.fixture
def partitioned(settings):
    settings.DIFFMIG_PARTITION_ROWS = PARTITION_ROWS


def test_a_run_with_helper_processes_writes_exactly_what_one_process_writes(
    clinic,  # noqa: F811
    partitioned,
    settings,
    monkeypatch,
):
    settings.DIFFMIG_LOCAL_PROCESSES = 3
    codes: list[int] = []
    wait = local_processes.wait
    monkeypatch.setattr(local_processes, "wait", lambda helpers: codes.extend(wait(helpers)))
    told = Counter()

    class Bars:
        def phase_started(self, entity: str, phase: str, total: int) -> None:
            pass

        def advanced(self, entity: str, phase: str, rows: int) -> None:
            told[entity] += rows

    started = start_run(options=RunOptions(batch_size=10), user="test", observer=Bars())
    session_id = started.session.migration_session_id
    assert_migrated(clinic, session_id)
    # The progress bars end at what every process did.
    for control in MigrationControl.objects.filter(session_id=session_id):
        done = control.processed_count + control.failed_count + control.skipped_count
        assert told[control.entity_type] == done, control.entity_type
    partitions = MigrationCheckpoint.objects.filter(unit__startswith="upsert:")
    assert partitions.count() == 3 + 8
    assert set(partitions.values_list("state", flat=True)) == {CheckpointState.COMPLETED}
    assert not partitions.exclude(lease_owner="").exists()
    assert codes == [0, 0, 0, 0]  # two helpers for each partitioned entity, ended well


def test_helpers_alone_finish_the_partitions_a_dead_executor_left(
    clinic,  # noqa: F811
    partitioned,
):
    """The executor dies in the patients' first partition; two helpers started on the
    entity run take every partition left, from their checkpoints, and write exactly."""
    session = launch_session(entities=["office", "doctor", "patient"], user="test")
    session_id = session.migration_session_id

    def die_in_a_partition(point: str) -> None:
        if (
            point == "after_control_commit"
            and MigrationCheckpoint.objects.filter(
                unit__startswith="upsert:", records_processed__gt=0
            ).exists()
        ):
            raise Crash

    with pytest.raises(Crash):
        execute_session(session_id=session_id, fault=die_in_a_partition)
    patient = MigrationControl.objects.get(session_id=session_id, entity_type="patient")
    started = MigrationCheckpoint.objects.filter(migration_run_id=patient.run_id)
    assert started.filter(records_processed__gt=0).count() == 1  # one batch of one partition
    assert not started.exclude(lease_owner="").exists()  # the dead executor let it go

    helpers = local_processes.start(session_id, patient, 2)
    assert local_processes.wait(helpers) == [0, 0]

    assert set(started.values_list("state", flat=True)) == {CheckpointState.COMPLETED}
    assert (
        destination_by_key(clinic.target_url)["patient"]
        == (expected_destination(clinic.data)["patient"])
    )
    upserts = AnalysisChange.objects.filter(analysis_id=patient.analysis_id, kind__in=UPSERT_KINDS)
    assert sum(started.values_list("records_processed", flat=True)) == upserts.count()
    assert MigrationStatus.objects.get(pk=session.pk).overall_status == SessionStatus.RUNNING
    assert leases.release(holder_id=patient.pk, owner=patient.lease_owner)
