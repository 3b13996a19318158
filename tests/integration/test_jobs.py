"""Runs as RQ jobs, on real workers: MariaDB legacy → PostgreSQL, Redis, worker processes.

Each test launches sessions of the legacy clinic (migrationsapp.demo.clinic) the way the web
and the CLI do with REDIS_URL (``services.runs.start_run``) and lets real
``diffmig worker`` processes execute them; the destination must then hold exactly the rows
and UUIDs an uninterrupted run writes, computed without the engine. Workers are killed with
SIGKILL (worker and work horse together) to show that a lost job loses and duplicates
nothing.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import django_rq
import pytest
from django.db import connection

from migrationsapp.demo.clinic import (
    ENTITIES,
    apply_changes,
    expected_analysis,
    expected_destination,
    expected_failures,
)
from migrationsapp.engine.ids import destination_uuid
from migrationsapp.jobs import run_unit
from migrationsapp.models import (
    DifferentialAnalysisResult,
    MigrationCheckpoint,
    MigrationControl,
    MigrationExecutionLog,
    MigrationStatus,
    QuarantinedRecord,
    RecordEvent,
    RecordMap,
)
from migrationsapp.models.choices import EntityState, OperationType, SessionStatus
from migrationsapp.services import leases
from migrationsapp.services.dispatch import JOB, Unit, enqueue_unit
from migrationsapp.services.runs import (
    LaunchRefusedError,
    RunOptions,
    launch_session,
    request_cancel,
    request_pause,
    resume_run,
    start_run,
)
from tests.integration.conftest import cli
from tests.support.clinic_run import Clinic, clinic_in, destination_by_key, record_map
from tests.support.workers import jobs_on_redis, wait_until, workers

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SEED = 20260601


@pytest.fixture
def clinic(mysql_to_pg) -> Iterator[Clinic]:
    with clinic_in(mysql_to_pg, SEED) as clinic:
        yield clinic


@pytest.fixture
def redis_jobs(settings):
    settings.DIFFMIG_LEASE_TIMEOUT = 60
    settings.DIFFMIG_UNIT_BATCHES = 3
    settings.DIFFMIG_MAX_ATTEMPTS = 3
    settings.DIFFMIG_WATCHDOG_INTERVAL = 1
    with jobs_on_redis(settings) as client:
        yield client


# --------------------------------------------------------------------------- helpers


def launch(batch_size: int, entities: list[str] | None = None) -> uuid.UUID:
    """Launch and submit as the web and the CLI do: the first units go to Redis at commit."""
    started = start_run(
        entities=entities, options=RunOptions(batch_size=batch_size), user="test", background=True
    )
    return started.session.migration_session_id


def status(session_id: uuid.UUID) -> str:
    return MigrationStatus.objects.get(migration_session_id=session_id).overall_status


def batch_entries(session_id: uuid.UUID, entity: str | None = None):
    entries = MigrationExecutionLog.objects.filter(
        session_id=session_id,
        operation_type=OperationType.CHECKPOINT_SAVE,
        message__contains=": batch of ",
    )
    return entries.filter(entity_type=entity) if entity else entries


def batches(session_id: uuid.UUID) -> int:
    return batch_entries(session_id).count()


def finished(session_id: uuid.UUID) -> bool:
    return status(session_id) in (
        SessionStatus.COMPLETED,
        SessionStatus.FAILED,
        SessionStatus.CANCELLED,
    )


def leased(session_id: uuid.UUID) -> bool:
    return MigrationControl.objects.filter(session_id=session_id).exclude(lease_owner="").exists()


def queued_jobs() -> list[str]:
    return django_rq.get_queue("diffmig").job_ids


def assert_migrated(clinic: Clinic, session_id: uuid.UUID) -> None:
    """The destination, record map, quarantine and counters of an uninterrupted run."""
    assert status(session_id) == SessionStatus.COMPLETED
    expected = expected_destination(clinic.data)
    assert destination_by_key(clinic.target_url) == expected
    mapped = record_map()
    for entity in ENTITIES:
        assert mapped[entity] == {key: destination_uuid(entity, key) for key in expected[entity]}
    open_quarantine = {entity: set() for entity in ENTITIES}
    for entity, key in QuarantinedRecord.objects.filter(resolved_at__isnull=True).values_list(
        "entity_type", "legacy_key_text"
    ):
        open_quarantine[entity].add(key)
    assert open_quarantine == expected_failures(clinic.data)
    # One event per record and run, and processed + failed + skipped = the changes.
    events = Counter(
        RecordEvent.objects.filter(session_id=session_id).values_list(
            "entity_type", "legacy_key_text"
        )
    )
    assert [key for key, n in events.items() if n > 1] == []
    for control in MigrationControl.objects.filter(session_id=session_id):
        changes = (
            control.new_count + control.modified_count + control.deleted_count + control.retry_count
        )
        done = control.processed_count + control.failed_count + control.skipped_count
        assert (control.entity_type, control.state, done) == (
            control.entity_type,
            EntityState.COMPLETED,
            changes,
        )
        assert sum(n for (e, _), n in events.items() if e == control.entity_type) == changes
        assert control.lease_owner == ""


# --------------------------------------------------------------------------- tests


def test_runs_through_rq_workers_match_the_ground_truth(clinic, redis_jobs, tmp_path):
    with workers(tmp_path) as start:
        # `diffmig run` without --wait hands the session to the workers and returns at once.
        launched = cli("run", "--batch-size", "20")
        assert launched.code == 0, launched.err
        session_id = MigrationStatus.objects.get().migration_session_id
        assert launched.out.splitlines()[0] == f"session {session_id}"
        assert status(session_id) == SessionStatus.RUNNING
        # Only the office is ready: the others wait in PostgreSQL, not in Redis.
        assert len(queued_jobs()) == 1
        assert start(burst=True).wait(timeout=90) == 0
        assert_migrated(clinic, session_id)

        # A round of changes with a known ground truth, deletes of parents and children included;
        # `run --wait` follows the session on a worker to its end.
        before = clinic.data.snapshot()
        truth = expected_analysis(before, apply_changes(clinic.legacy, clinic.data, SEED + 1))
        worker = start()
        followed = cli("run", "--wait", "--json", "--batch-size", "7")
        assert worker.stop() == 0

    assert followed.code == 0, followed.err
    document = json.loads(followed.out)
    assert document["session"]["status"] == "completed"
    session_id = uuid.UUID(document["session"]["id"])
    assert_migrated(clinic, session_id)
    for entity in ENTITIES:
        found = {kind: document["entities"][entity][kind] for kind in truth[entity]}
        assert found == {kind: len(keys) for kind, keys in truth[entity].items()}, entity
    # Deletes ran last, children before parents.
    deletes = [
        entity
        for entity in batch_entries(session_id)
        .filter(context_data__phase="delete")
        .order_by("id")
        .values_list("entity_type", flat=True)
    ]
    assert deletes == sorted(deletes, key=ENTITIES.index, reverse=True)
    assert queued_jobs() == []


def test_a_unit_enqueued_twice_runs_its_batches_once(clinic, redis_jobs, settings, tmp_path):
    settings.DIFFMIG_UNIT_BATCHES = 100  # the duplicated unit does all its batches in one job
    session_id = launch(batch_size=1, entities=["office"])
    office = MigrationControl.objects.get(session_id=session_id, entity_type="office")
    unit = Unit(
        session_id=session_id,
        control_id=office.pk,
        entity="office",
        phase="upsert",
        position=0,
        attempt=0,
    )
    assert enqueue_unit(unit) is False  # the same unit is not queued twice...

    # ...and a copy that runs while another holds the lease stops before it writes anything.
    assert leases.acquire(control_id=office.pk, owner="another-copy")
    outcome = run_unit(
        session_id=str(session_id), control_id=str(office.pk), phase="upsert", position=0
    )
    assert outcome == "busy"
    office.refresh_from_db()
    assert (office.lease_owner, office.analysis_id) == ("another-copy", None)
    assert not MigrationCheckpoint.objects.filter(migration_run=office).exists()
    assert not RecordMap.objects.exists()
    assert leases.release(holder_id=office.pk, owner="another-copy")

    # Two copies in Redis under two ids (a replay), taken by two workers at the same time.
    django_rq.get_queue("diffmig").enqueue_call(
        JOB,
        kwargs={
            "session_id": str(session_id),
            "control_id": str(office.pk),
            "phase": "upsert",
            "position": 0,
        },
        job_id="a-replayed-copy",
    )
    assert len(queued_jobs()) == 2
    with workers(tmp_path) as start:
        pair = [start(burst=True), start(burst=True)]
        for worker in pair:
            assert worker.wait(timeout=90) == 0

    assert status(session_id) == SessionStatus.COMPLETED
    expected = expected_destination(clinic.data)["office"]
    assert destination_by_key(clinic.target_url)["office"] == expected
    assert record_map()["office"] == {key: destination_uuid("office", key) for key in expected}
    # One batch per office (batch size 1), one event per office, one analysis: nothing twice.
    offices = len(clinic.data.rows["office"])
    assert batch_entries(session_id, "office").count() == offices
    events = RecordEvent.objects.filter(session_id=session_id)
    assert events.count() == len(set(events.values_list("legacy_key_text", flat=True))) == offices
    analyses = DifferentialAnalysisResult.objects.filter(session_id=session_id)
    assert analyses.count() == 1


def test_workers_killed_mid_run_lose_and_duplicate_nothing(clinic, redis_jobs, settings, tmp_path):
    settings.DIFFMIG_LEASE_TIMEOUT = 2
    settings.DIFFMIG_UNIT_BATCHES = 2
    settings.DIFFMIG_MAX_ATTEMPTS = 10
    rng = random.Random(SEED)
    session_id = launch(batch_size=10)

    with workers(tmp_path) as start:
        dead_leases = 0
        for _ in range(3):
            target = batches(session_id) + rng.randint(1, 4)
            worker = start()
            wait_until(
                lambda target=target: batches(session_id) >= target and leased(session_id),
                timeout=30,
                what="a unit in progress",
            )
            worker.kill()
            assert status(session_id) == SessionStatus.RUNNING
            # The killed unit's lease stays, unrenewed, until a watchdog takes it over.
            dead_leases += leased(session_id)
        # A new worker's watchdog takes the dead workers' leases over and finishes the run.
        survivor = start()
        wait_until(lambda: finished(session_id), timeout=60, what="the session ended")
        assert survivor.stop() == 0

    assert_migrated(clinic, session_id)
    takeovers = MigrationExecutionLog.objects.filter(
        session_id=session_id,
        operation_type=OperationType.CHECKPOINT_RESTORE,
        message__contains="stopped renewing the lease",
    )
    assert dead_leases >= 1
    assert takeovers.count() == dead_leases


def test_pause_resume_and_cancel_through_the_workers(clinic, redis_jobs, settings, tmp_path):
    settings.DIFFMIG_UNIT_BATCHES = 1
    session_id = launch(batch_size=10)

    with workers(tmp_path) as start:
        worker = start()
        wait_until(lambda: batches(session_id) >= 3, timeout=30, what="three batches")
        request_pause(session_id=session_id, user="test")
        wait_until(lambda: status(session_id) == SessionStatus.PAUSED, timeout=30, what="paused")
        controls = MigrationControl.objects.filter(session_id=session_id)
        assert set(controls.values_list("state", flat=True)) <= {
            EntityState.PAUSED,
            EntityState.COMPLETED,
        }
        assert set(controls.values_list("lease_owner", flat=True)) == {""}
        held = batches(session_id)
        time.sleep(1.5)  # nothing runs while paused
        assert batches(session_id) == held

        resume_run(session_id=session_id, user="test", background=True)
        wait_until(lambda: batches(session_id) >= held + 3, timeout=30, what="resumed")
        request_cancel(session_id=session_id, user="test")
        wait_until(
            lambda: status(session_id) == SessionStatus.CANCELLED, timeout=30, what="cancelled"
        )
        assert set(controls.values_list("state", flat=True)) <= {
            EntityState.CANCELLED,
            EntityState.COMPLETED,
        }
        assert set(controls.values_list("lease_owner", flat=True)) == {""}

        # What the cancelled session wrote stays; the next session continues from there.
        next_session = launch(batch_size=50)
        wait_until(lambda: finished(next_session), timeout=60, what="the next session ended")
        assert worker.stop() == 0

    assert_migrated(clinic, next_session)


def test_twenty_concurrent_launches_of_one_entity_accept_exactly_one(clinic):
    barrier = threading.Barrier(20)
    accepted: list[uuid.UUID] = []
    refusals: list[str] = []

    def launch_office() -> None:
        try:
            barrier.wait()
            session = launch_session(entities=["office"], user="test")
            accepted.append(session.migration_session_id)
        except LaunchRefusedError as error:
            refusals.append(str(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=launch_office) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(accepted) == 1
    assert len(refusals) == 19
    assert all(f"already running in session {accepted[0]}" in message for message in refusals)
    assert MigrationStatus.objects.count() == 1
    assert MigrationControl.objects.count() == 1


def test_a_unit_that_cannot_start_is_retried_then_fails_its_entity(clinic, redis_jobs, settings):
    settings.DIFFMIG_MAX_ATTEMPTS = 2
    session_id = launch(batch_size=50)
    office = MigrationControl.objects.get(session_id=session_id, entity_type="office")
    unit = {"session_id": str(session_id), "control_id": str(office.pk), "phase": "upsert"}
    # The legacy database is refused from now on: the unit cannot open it.
    settings.DIFFMIG_ALLOWED_DB_HOSTS = ["db.elsewhere.test"]

    assert run_unit(**unit, position=0) == "error"
    office.refresh_from_db()
    assert (office.state, office.lease_owner, office.attempts) == (EntityState.RUNNING, "", 1)
    retry = MigrationExecutionLog.objects.get(session_id=session_id, log_level="error")
    assert "the watchdog tries again (attempt 1 of 2)" in retry.message

    assert run_unit(**unit, position=0) == "failed"
    states = dict(
        MigrationControl.objects.filter(session_id=session_id).values_list("entity_type", "state")
    )
    assert states == {
        "office": EntityState.FAILED,
        "doctor": EntityState.BLOCKED,
        "patient": EntityState.BLOCKED,
        "appointment": EntityState.BLOCKED,
    }
    assert status(session_id) == SessionStatus.FAILED
    assert "failed 2 times" in MigrationStatus.objects.get().error_summary["entities"]["office"]
    assert not RecordMap.objects.exists()
