"""The runs pages say when launched runs cannot move: no worker listening, or Redis down."""

from __future__ import annotations

import django_rq
import pytest
from django.urls import reverse

from migrationsapp.models.choices import SessionStatus
from migrationsapp.selectors.workers import QueueHealth, queue_health
from migrationsapp.services.dispatch import EXECUTOR, JOB
from tests.factories import MigrationStatusFactory
from tests.support.workers import jobs_on_redis, wait_until, workers

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

NO_WORKER = "No diffmig worker is running"
HTMX = {"HTTP_HX_REQUEST": "true"}


def dashboard(client, *, htmx: bool = False) -> str:
    response = client.get(reverse("runs:dashboard"), **(HTMX if htmx else {}))
    assert response.status_code == 200
    return response.content.decode()


def test_no_worker_then_one_worker(settings, operator_client, tmp_path):
    with jobs_on_redis(settings) as client:
        unit = {"session_id": "0" * 32, "control_id": "0" * 32, "phase": "upsert", "position": 0}
        django_rq.get_queue("diffmig").enqueue_call(JOB, kwargs=unit)
        assert queue_health() == QueueHealth(workers=0, queued=1)
        for page in (dashboard(operator_client), dashboard(operator_client, htmx=True)):
            assert f"{NO_WORKER}: 1 queued unit waits until one starts" in page
        client.delete("rq:queue:diffmig")

        with workers(tmp_path) as start:
            worker = start()
            wait_until(lambda: queue_health().workers == 1, timeout=30, what="a worker listens")
            assert NO_WORKER not in dashboard(operator_client, htmx=True)
            assert worker.stop() == 0
        # A worker that stops says goodbye: none is left.
        assert queue_health() == QueueHealth(workers=0, queued=0)


def test_redis_unreachable_is_said_on_the_dashboard(settings, operator_client):
    down = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.REDIS_URL = down
    settings.RQ_QUEUES = {name: {"URL": down} for name in settings.DIFFMIG_QUEUES}

    health = queue_health()

    assert health.stalled and "Connection refused" in health.error
    assert "The job queue (Redis) is unreachable (" in dashboard(operator_client)


def test_in_process_runs_need_no_worker(settings, operator_client):
    settings.REDIS_URL = None
    assert queue_health() is None
    page = dashboard(operator_client)
    assert NO_WORKER not in page and "queue-health" not in page


def test_a_live_session_on_the_workers_says_no_worker_runs(settings, operator_client):
    live = MigrationStatusFactory(
        overall_status=SessionStatus.RUNNING, options={"executor": EXECUTOR}
    )
    done = MigrationStatusFactory(
        overall_status=SessionStatus.COMPLETED, options={"executor": EXECUTOR}
    )
    in_process = MigrationStatusFactory(overall_status=SessionStatus.RUNNING, options={})
    with jobs_on_redis(settings):

        def page(session, **headers) -> str:
            url = reverse("runs:session", args=[session.migration_session_id])
            return operator_client.get(url, **headers).content.decode()

        assert NO_WORKER in page(live)
        assert NO_WORKER in page(live, **HTMX)  # the polled fragment too
        assert NO_WORKER not in page(done)
        assert NO_WORKER not in page(in_process)
