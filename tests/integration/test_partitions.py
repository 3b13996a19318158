"""Partitions on real workers: a large entity's upserts split into key ranges that several
RQ workers run at once (services.partitions), each range with its own checkpoint and lease.

The clinic (MariaDB legacy → PostgreSQL) with ``DIFFMIG_PARTITION_ROWS`` small: the patients
(120) and the appointments (300) are split. The first units run in the test process until
an entity's partitions are queued; then real ``diffmig worker`` processes share them. The
destination must hold exactly what an uninterrupted run writes (tests.integration.test_jobs).
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import django_rq
import pytest

from migrationsapp.jobs import run_unit
from migrationsapp.models import MigrationCheckpoint, MigrationControl, MigrationExecutionLog
from migrationsapp.models.choices import CheckpointState, OperationType
from tests.integration.test_jobs import (  # noqa: F401 (clinic, redis_jobs: fixtures)
    assert_migrated,
    batches,
    clinic,
    finished,
    launch,
    redis_jobs,
)
from tests.support.workers import wait_until, workers

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PARTITION_ROWS = 40  # patients: 3 partitions, appointments: 8


@pytest.fixture
def partitioned(redis_jobs, settings):  # noqa: F811
    settings.DIFFMIG_PARTITION_ROWS = PARTITION_ROWS
    settings.DIFFMIG_UNIT_BATCHES = 2
    return redis_jobs


def partition_jobs(session_id: uuid.UUID, entity: str) -> list[str]:
    control = MigrationControl.objects.get(session_id=session_id, entity_type=entity)
    prefix = f"diffmig-{control.pk.hex}-upsert_"
    return [
        job_id for job_id in django_rq.get_queue("diffmig").job_ids if job_id.startswith(prefix)
    ]


def run_here_until_partitions_are_queued(session_id: uuid.UUID, entity: str) -> None:
    """Be the only worker (in this process) until the entity's partitions wait in the queue."""
    queue = django_rq.get_queue("diffmig")
    for _ in range(500):
        if partition_jobs(session_id, entity):
            return
        job_ids = queue.job_ids
        assert job_ids, "the session stopped before its partitions were queued"
        job = queue.fetch_job(job_ids[0])
        kwargs = dict(job.kwargs)
        job.delete()  # taken off the queue, as a worker pops it
        run_unit(**kwargs)
    raise AssertionError("no partitions were queued")


def partitions_of(session_id: uuid.UUID):
    return MigrationCheckpoint.objects.filter(
        migration_run__session_id=session_id, unit__startswith="upsert:"
    )


def held_partitions(session_id: uuid.UUID):
    return partitions_of(session_id).exclude(lease_owner="")


def assert_partitioned(session_id: uuid.UUID) -> None:
    split = Counter(partitions_of(session_id).values_list("entity_type", flat=True))
    assert split == {"patient": 3, "appointment": 8}
    assert set(partitions_of(session_id).values_list("state", "lease_owner")) == {
        (CheckpointState.COMPLETED, "")
    }
    # Each range was done once: its processed records are exactly its share of the changes.
    for part in partitions_of(session_id):
        data = part.checkpoint_data
        assert part.batch_position == data["hi"], part.unit
        assert part.records_remaining == 0
    by_entity = Counter()
    for entity, done in partitions_of(session_id).values_list("entity_type", "records_processed"):
        by_entity[entity] += done
    assert by_entity == {"patient": 120, "appointment": 300}


def workers_that_ran_partitions(log_dir: Path, entity: str) -> int:
    return sum(
        f"diffmig {entity} upsert:" in log.read_text(errors="replace")
        for log in log_dir.glob("worker-*.log")
    )


def test_three_workers_share_the_partitions_of_a_large_entity(clinic, partitioned, tmp_path):  # noqa: F811
    session_id = launch(batch_size=10)
    # Office, doctors and the patients' partitions (one after another) run here...
    run_here_until_partitions_are_queued(session_id, "appointment")
    # ...until the appointments' eight ranges wait together, for three workers at once.
    assert len(partition_jobs(session_id, "appointment")) == 8
    assert held_partitions(session_id).count() == 0

    with workers(tmp_path) as start:
        trio = [start(burst=True) for _ in range(3)]
        for worker in trio:
            assert worker.wait(timeout=90) == 0, worker.log()

    assert_migrated(clinic, session_id)
    assert_partitioned(session_id)
    assert workers_that_ran_partitions(tmp_path, "appointment") >= 2


def test_a_worker_killed_in_a_partition_loses_and_duplicates_nothing(
    clinic,  # noqa: F811
    partitioned,
    settings,
    tmp_path,
):
    settings.DIFFMIG_LEASE_TIMEOUT = 2
    settings.DIFFMIG_MAX_ATTEMPTS = 10
    session_id = launch(batch_size=20)
    run_here_until_partitions_are_queued(session_id, "patient")

    with workers(tmp_path) as start:
        dead = 0
        for _ in range(3):
            target = batches(session_id) + 2
            worker = start()
            wait_until(
                lambda target=target: (
                    batches(session_id) >= target
                    and held_partitions(session_id).filter(state=CheckpointState.ACTIVE).exists()
                ),
                timeout=30,
                what="a partition in progress",
            )
            worker.kill()
            dead = held_partitions(session_id).count()
            if dead:
                break  # its lease stays, unrenewed, until a watchdog takes it over
        assert dead >= 1
        survivor = start()
        wait_until(lambda: finished(session_id), timeout=60, what="the session ended")
        assert survivor.stop() == 0

    assert_migrated(clinic, session_id)
    assert_partitioned(session_id)
    takeovers = MigrationExecutionLog.objects.filter(
        session_id=session_id,
        operation_type=OperationType.CHECKPOINT_RESTORE,
        message__contains=": its worker stopped renewing the lease",
    )
    assert takeovers.filter(message__contains="(upsert:").count() >= dead
