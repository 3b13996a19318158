"""With REDIS_URL: a verification launched from the web runs as a job on a real burst worker
(the low-priority queue), and a due schedule is fired by a real burst worker's watchdog round
and its session runs on the workers to its end. Legacy clinic in MariaDB, destination and
control database in PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.urls import reverse
from django.utils import timezone

from migrationsapp.models import MigrationExecutionLog, MigrationStatus, RunSchedule, VerifyRun
from migrationsapp.models.choices import SessionStatus
from migrationsapp.models.verify_runs import VerifyState
from migrationsapp.services.run_schedules import LAUNCHED, create_schedule
from tests.support.clinic_run import Clinic, clinic_in
from tests.support.workers import jobs_on_redis, workers

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SEED = 20261207
CLINIC = ["office", "doctor", "patient", "appointment"]


@pytest.fixture
def clinic(mysql_to_pg) -> Iterator[Clinic]:
    with clinic_in(mysql_to_pg, SEED) as clinic:
        yield clinic


@pytest.fixture
def redis_jobs(settings):
    settings.DIFFMIG_LEASE_TIMEOUT = 60
    settings.DIFFMIG_UNIT_BATCHES = 50
    with jobs_on_redis(settings) as client:
        yield client


def test_a_due_schedule_fires_on_a_worker_then_verify_now_runs_as_a_job(
    clinic, redis_jobs, operator_client, tmp_path
):
    schedule = create_schedule(name="nightly", interval_hours=24)
    RunSchedule.objects.filter(pk=schedule.pk).update(
        next_run_at=timezone.now() - dt.timedelta(minutes=1)
    )
    with workers(tmp_path) as start:
        worker = start(burst=True)  # one watchdog round, then the queues until empty
        assert worker.wait(timeout=120) == 0, worker.log()

    schedule.refresh_from_db()
    assert schedule.last_outcome == LAUNCHED, schedule.last_message
    assert schedule.next_run_at > timezone.now() + dt.timedelta(hours=23)
    session = MigrationStatus.objects.get()
    assert session.migration_session_id == schedule.last_session_id
    assert session.launched_by == "schedule nightly"
    assert session.overall_status == SessionStatus.COMPLETED, worker.log()
    assert MigrationExecutionLog.objects.filter(
        message=f"schedule nightly: launched session {session.migration_session_id}"
    ).exists()

    response = operator_client.post(
        reverse("verify:launch"), {"session": str(session.migration_session_id)}
    )
    run = VerifyRun.objects.get()
    assert response.status_code == 302 and run.state == VerifyState.PENDING
    assert [job.id for job in redis_jobs_low()] == [f"diffmig-verify-{run.id.hex}"]
    with workers(tmp_path) as start:
        worker = start(burst=True)
        assert worker.wait(timeout=120) == 0, worker.log()

    run.refresh_from_db()
    assert run.state == VerifyState.EQUAL, run.error
    assert [r.entity_type for r in run.reports.order_by("position")] == CLINIC
    assert all(r.compared > 0 and r.equal for r in run.reports.all())


def redis_jobs_low():
    import django_rq

    return django_rq.get_queue("diffmig_low").get_jobs()
