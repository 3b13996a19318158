"""The watchdog on the real control database and Redis: stale leases, lost jobs, attempts.

Sessions and entity runs are made with factories in the states a dead worker leaves behind;
no worker runs here, so what the watchdog enqueued stays in the queue to be looked at.
"""

from __future__ import annotations

import datetime as dt

import django_rq
import pytest
from django.db import transaction
from django.utils import timezone
from rq.job import Job

from migrationsapp.models import MigrationControl, MigrationExecutionLog, MigrationStatus
from migrationsapp.models.choices import EntityState, OperationType, SessionStatus
from migrationsapp.services import schedule, watchdog
from migrationsapp.services.dispatch import (
    EXECUTOR,
    QueueUnavailableError,
    dispatch,
    start_session,
    submit,
)
from migrationsapp.services.runs import resume_run
from tests.factories import (
    MigrationCheckpointFactory,
    MigrationControlFactory,
    MigrationExecutionLogFactory,
    MigrationStatusFactory,
)
from tests.integration.conftest import cli
from tests.support.workers import jobs_on_redis, workers

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def redis_jobs(settings):
    settings.DIFFMIG_LEASE_TIMEOUT = 60
    settings.DIFFMIG_MAX_ATTEMPTS = 3
    with jobs_on_redis(settings) as client:
        yield client


def queued() -> dict[str, dict]:
    queue = django_rq.get_queue("diffmig")
    return {
        job_id: Job.fetch(job_id, connection=queue.connection).kwargs for job_id in queue.job_ids
    }


def running_session(*, executor: str | None = EXECUTOR) -> MigrationStatus:
    options = {"executor": executor} if executor else {}
    return MigrationStatusFactory(overall_status=SessionStatus.RUNNING, options=options)


def entity_run(session, name, *, position, depends_on=(), **fields) -> MigrationControl:
    return MigrationControlFactory(
        session=session,
        entity_type=name,
        position=position,
        depends_on=list(depends_on),
        **{"state": EntityState.PENDING, "phase": "upsert", **fields},
    )


def dead_worker_lease(seconds_ago: float) -> dict:
    return {
        "state": EntityState.RUNNING,
        "lease_owner": "a-dead-worker",
        "lease_heartbeat": NOW - dt.timedelta(seconds=seconds_ago),
    }


def test_a_stale_lease_is_taken_over_and_its_unit_dispatched_from_the_checkpoint(redis_jobs):
    session = running_session()
    office = entity_run(session, "office", position=0, **dead_worker_lease(61))
    entity_run(session, "doctor", position=1, depends_on=["office"])
    MigrationCheckpointFactory(migration_run=office, unit="upsert", batch_position=40)

    report = watchdog.check(now=NOW)

    sid = session.migration_session_id
    assert report.expired == [f"{sid} office"]
    assert report.failed == []
    office.refresh_from_db()
    assert (office.state, office.lease_owner, office.attempts) == (EntityState.RUNNING, "", 1)
    job_id = f"diffmig-{office.pk.hex}-upsert-40-1"
    assert report.dispatched == [job_id]
    assert queued() == {
        job_id: {
            "session_id": str(sid),
            "control_id": str(office.pk),
            "phase": "upsert",
            "position": 40,
        }
    }
    restore = MigrationExecutionLog.objects.get(
        session_id=sid, operation_type=OperationType.CHECKPOINT_RESTORE
    )
    assert (restore.entity_type, restore.action, restore.actor) == (
        "office",
        "unit.taken_over",
        "worker",
    )
    assert "stopped renewing the lease" in restore.message
    assert "attempt 2 of 3" in restore.message

    # The next round finds the job queued: nothing is taken over or queued twice.
    again = watchdog.check(now=NOW)
    assert (again.expired, again.dispatched) == ([], [])
    assert list(queued()) == [job_id]


def test_a_fresh_lease_and_an_in_process_session_are_left_alone(redis_jobs):
    session = running_session()
    fresh = entity_run(session, "office", position=0, **dead_worker_lease(59))
    in_process = running_session(executor=None)
    stale = entity_run(in_process, "doctor", position=0, **dead_worker_lease(600))

    report = watchdog.check(now=NOW)

    assert not report.acted
    assert queued() == {}
    for control in (fresh, stale):
        before = (control.lease_owner, control.lease_heartbeat, control.attempts)
        control.refresh_from_db()
        assert (control.lease_owner, control.lease_heartbeat, control.attempts) == before


def test_out_of_attempts_the_entity_fails_and_its_dependants_are_blocked(redis_jobs):
    session = running_session()
    office = entity_run(session, "office", position=0, attempts=2, **dead_worker_lease(300))
    doctor = entity_run(session, "doctor", position=1, depends_on=["office"])
    patient = entity_run(session, "patient", position=2, depends_on=["doctor"])

    report = watchdog.check(now=NOW)

    assert report.failed == [f"{session.migration_session_id} office"]
    assert report.dispatched == []
    states = dict(
        MigrationControl.objects.filter(session=session).values_list("entity_type", "state")
    )
    assert states == {
        office.entity_type: EntityState.FAILED,
        doctor.entity_type: EntityState.BLOCKED,
        patient.entity_type: EntityState.BLOCKED,
    }
    office.refresh_from_db()
    assert "stopped renewing the lease 3 times" in office.message
    session.refresh_from_db()
    assert session.overall_status == SessionStatus.FAILED
    assert "office" in session.error_summary["entities"]
    assert queued() == {}


def test_a_ready_unit_that_redis_lost_is_dispatched_again(redis_jobs):
    session = running_session()
    office = entity_run(session, "office", position=0)
    job_id = f"diffmig-{office.pk.hex}-upsert-0-0"

    assert watchdog.check(now=NOW).dispatched == [job_id]
    redis_jobs.flushdb()  # Redis restarted without persistence
    assert queued() == {}

    assert watchdog.check(now=NOW).dispatched == [job_id]
    assert list(queued()) == [job_id]
    # The session's log says the unit was enqueued again, and why.
    lost = MigrationExecutionLog.objects.filter(
        session_id=session.migration_session_id,
        operation_type=OperationType.CHECKPOINT_RESTORE,
        message__contains="had no job in the queue",
    ).last()
    assert lost.context_data == {"jobs": [job_id]}
    assert (lost.log_level, lost.action, lost.actor) == ("info", "unit.requeued", "worker")


def test_a_launch_whose_launcher_died_before_starting_it_is_started(redis_jobs):
    orphan = MigrationStatusFactory(overall_status=SessionStatus.PENDING, launched_by="ana")
    office = entity_run(orphan, "office", position=0)
    just_launched = MigrationStatusFactory(overall_status=SessionStatus.PENDING)
    entity_run(just_launched, "doctor", position=0)
    MigrationStatus.objects.filter(pk=orphan.pk).update(created_at=NOW - dt.timedelta(seconds=61))
    MigrationStatus.objects.filter(pk=just_launched.pk).update(
        created_at=NOW - dt.timedelta(seconds=59)
    )

    report = watchdog.check(now=NOW)

    sid = orphan.migration_session_id
    assert report.started == [str(sid)]
    assert report.dispatched == [f"diffmig-{office.pk.hex}-upsert-0-0"]
    orphan.refresh_from_db()
    assert (orphan.overall_status, orphan.options["executor"]) == (SessionStatus.RUNNING, EXECUTOR)
    started = MigrationExecutionLog.objects.get(session_id=sid, message__contains="never started")
    assert (started.operation_type, started.log_level) == (OperationType.CHECKPOINT_RESTORE, "warn")
    assert started.context_data == {"launched_by": "ana"}
    assert (started.action, started.actor) == ("session.never_started", "worker")
    # A launch younger than a lease may still be starting: left to its launcher.
    just_launched.refresh_from_db()
    assert just_launched.overall_status == SessionStatus.PENDING
    assert list(queued()) == report.dispatched
    # The next round finds it running: it is not started twice.
    assert watchdog.check(now=NOW).started == []


def test_a_session_asked_to_pause_whose_worker_died_is_paused_by_the_watchdog(redis_jobs):
    session = running_session()
    MigrationStatus.objects.filter(pk=session.pk).update(pause_requested_at=NOW)
    office = entity_run(session, "office", position=0, **dead_worker_lease(120))
    entity_run(session, "doctor", position=1, depends_on=["office"])

    report = watchdog.check(now=NOW)

    assert report.expired == [f"{session.migration_session_id} office"]
    assert report.dispatched == []
    session.refresh_from_db()
    assert session.overall_status == SessionStatus.PAUSED
    assert set(
        MigrationControl.objects.filter(session=session).values_list("state", flat=True)
    ) == {EntityState.PAUSED}
    office.refresh_from_db()
    assert office.lease_owner == ""
    assert queued() == {}


def test_resume_of_a_session_whose_leases_are_stale_dispatches_at_once(
    redis_jobs, settings, django_capture_on_commit_callbacks
):
    settings.DIFFMIG_LEASE_TIMEOUT = 0  # every lease is stale at once
    session = running_session()
    office = entity_run(session, "office", position=0, attempts=2, **dead_worker_lease(5))
    MigrationCheckpointFactory(migration_run=office, unit="upsert", batch_position=7)

    with django_capture_on_commit_callbacks(execute=True):
        resume_run(session_id=session.migration_session_id, user="test", background=True)

    office.refresh_from_db()
    # Resumed by an operator: pending again, no lease, its attempts granted afresh.
    assert (office.state, office.lease_owner, office.attempts) == (EntityState.PENDING, "", 0)
    assert list(queued()) == [f"diffmig-{office.pk.hex}-upsert-7-0"]


def test_watchdog_command_runs_one_round_and_says_what_it_did(redis_jobs):
    session = running_session()
    entity_run(session, "office", position=0, **dead_worker_lease(3600))

    result = cli("watchdog", "--once")

    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "watchdog: 1 lease(s) taken over, 0 entity run(s) failed, 1 job(s) dispatched",
        f"  taken over: {session.migration_session_id} office",
    ]
    assert len(queued()) == 1


def test_without_redis_the_worker_and_the_watchdog_say_runs_are_in_process(settings):
    settings.REDIS_URL = None
    for command in (("worker",), ("worker", "--burst"), ("watchdog", "--once")):
        result = cli(*command)
        assert result.code == 0, result.err
        assert result.out.startswith("REDIS_URL is not set: runs execute in-process")


def test_a_worker_that_cannot_reach_redis_when_it_starts_exits_4(settings):
    down = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.REDIS_URL = down
    settings.RQ_QUEUES = {name: {"URL": down} for name in settings.DIFFMIG_QUEUES}

    result = cli("worker")

    assert result.code == 4
    assert result.err.startswith("error: the job queue (Redis) is unreachable: ")


def test_with_redis_down_a_submitted_session_waits_running_for_the_watchdog(
    settings, django_capture_on_commit_callbacks
):
    down = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.REDIS_URL = down
    settings.RQ_QUEUES = {name: {"URL": down} for name in settings.DIFFMIG_QUEUES}
    session = MigrationStatusFactory(overall_status=SessionStatus.PENDING)
    entity_run(session, "office", position=0)

    # The web's way: the request does not fail, the log says why nothing runs yet.
    with django_capture_on_commit_callbacks(execute=True):
        submit(session_id=session.migration_session_id)

    session.refresh_from_db()
    assert session.overall_status == SessionStatus.RUNNING
    assert session.options["executor"] == EXECUTOR
    error = MigrationExecutionLog.objects.get(session=session, log_level="error")
    assert "the job queue (Redis) is unreachable" in error.message
    # The CLI's way: exit 4 (operational), the session still running.
    with pytest.raises(QueueUnavailableError):
        start_session(session_id=session.migration_session_id)


def test_dispatch_inside_a_transaction_enqueues_once_it_commits(redis_jobs):
    session = running_session()
    office = entity_run(session, "office", position=0)

    with transaction.atomic():
        assert dispatch(session_id=session.migration_session_id) == []
        assert queued() == {}  # a job must not start before it can see what was written

    assert list(queued()) == [f"diffmig-{office.pk.hex}-upsert-0-0"]


def test_the_workers_apply_the_policy_once_a_day(settings, tmp_path):
    """A worker's watchdog round enqueues the retention job on the low queue, once a day."""
    today = timezone.now()
    stale = MigrationExecutionLogFactory(timestamp=today - dt.timedelta(days=91))
    kept = MigrationExecutionLogFactory(timestamp=today - dt.timedelta(days=89))
    with jobs_on_redis(settings) as client:
        first = schedule.enqueue_daily_retention(client, now=today)
        assert first == f"diffmig-retention-{today:%Y-%m-%d}"
        assert django_rq.get_queue("diffmig_low").job_ids == [first]
        # Every other round that day, on any worker, enqueues nothing.
        assert schedule.enqueue_daily_retention(client, now=today) is None
        assert 0 < client.ttl(schedule.RETENTION_KEY) <= schedule.DAY_S
        with workers(tmp_path) as start:
            assert start(burst=True).wait(timeout=60) == 0
        assert django_rq.get_queue("diffmig_low").job_ids == []
    assert set(MigrationExecutionLog.objects.values_list("pk", flat=True)) == {kept.pk}
    assert stale.pk != kept.pk
