"""The RQ dashboard (``/django-rq/``): only with a queue to show, never a 500.

Without ``REDIS_URL`` jobs run in-process, so the dashboard says that instead of reading
whatever Redis database 0 of localhost holds; with it, unknown queues, jobs and workers are
404 and an unreachable Redis is 503. django-rq's pages are the only ones whose
Content-Security-Policy allows inline scripts.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.support.reliability import record
from tests.support.workers import jobs_on_redis

pytestmark = [pytest.mark.django_db]

# A URL of every kind of django-rq page, with arguments that name nothing that exists.
UNKNOWN_THINGS = [
    ("django_rq:jobs", {"queue_index": 7}),
    ("django_rq:queue_details", {"queue_index": 99}),
    ("django_rq:finished_jobs", {"queue_index": 99}),
    ("django_rq:workers", {"queue_index": 99}),
    ("django_rq:job_detail", {"queue_index": 0, "job_id": "no-such-job"}),
    ("django_rq:job_detail", {"queue_index": 99, "job_id": "no-such-job"}),
    ("django_rq:delete_job", {"queue_index": 0, "job_id": "no-such-job"}),
    ("django_rq:requeue_job", {"queue_index": 0, "job_id": "no-such-job"}),
    ("django_rq:enqueue_job", {"queue_index": 0, "job_id": "no-such-job"}),
    ("django_rq:stop_job", {"queue_index": 0, "job_id": "no-such-job"}),
    ("django_rq:result_detail", {"queue_index": 0, "job_id": "no-such-job", "result_id": "r"}),
    ("django_rq:worker_details", {"queue_index": 0, "key": "rq:worker:nobody"}),
]

# "Stop" is a POST that redirects to the job's page (which is then a 404) with a message.
STOP_JOB = {"get": 405, "post": 302}


@pytest.mark.embedded
def test_without_redis_url_the_dashboard_says_jobs_run_in_process(settings, operator_client):
    settings.REDIS_URL = None
    home = operator_client.get(reverse("django_rq:home"))
    assert home.status_code == 200
    assert b"No job queue" in home.content
    assert b"runs execute in-process" in home.content

    # Every other page of the dashboard: 404 with the same explanation, and no Redis read
    # (RQ_QUEUES still names localhost's database 0; nothing may talk to it).
    settings.RQ_QUEUES = {
        name: {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 1}
        for name in settings.DIFFMIG_QUEUES
    }
    pages = [reverse(name, kwargs=kwargs) for name, kwargs in UNKNOWN_THINGS]
    for url in pages:
        response = operator_client.get(url)
        assert response.status_code == 404, url
        assert b"runs execute in-process" in response.content, url
    record(
        "web",
        "RQ dashboard without REDIS_URL",
        tried=len(pages) + 1,
        held=len(pages) + 1,
        outcome="says that jobs run in-process; reads no Redis",
    )


@pytest.mark.embedded
def test_without_redis_url_the_dashboard_stays_for_those_who_control_runs(
    settings, auditor_client, editor_client, client
):
    settings.REDIS_URL = None
    url = reverse("django_rq:home")
    assert auditor_client.get(url).status_code == 403
    assert editor_client.get(url).status_code == 403
    assert client.get(url).status_code == 302


@pytest.mark.services
def test_unknown_queues_jobs_and_workers_are_404_not_500(settings, operator_client):
    with jobs_on_redis(settings):
        assert operator_client.get(reverse("django_rq:home")).status_code == 200
        for name, kwargs in UNKNOWN_THINGS:
            url = reverse(name, kwargs=kwargs)
            for method in (operator_client.get, operator_client.post):
                response = method(url)
                expected = STOP_JOB[method.__name__] if name == "django_rq:stop_job" else 404
                assert response.status_code == expected, (
                    method.__name__,
                    url,
                    response.status_code,
                )
    record(
        "web",
        "RQ dashboard: unknown queue, job or worker",
        tried=2 * len(UNKNOWN_THINGS),
        held=2 * len(UNKNOWN_THINGS),
        outcome="404, not a server error",
    )


@pytest.mark.services
def test_an_unreachable_redis_is_503(settings, operator_client):
    closed = "redis://127.0.0.1:1/0"
    settings.REDIS_URL = closed
    settings.RQ_QUEUES = {
        name: {"URL": closed, "DEFAULT_TIMEOUT": 1} for name in settings.DIFFMIG_QUEUES
    }
    response = operator_client.get(reverse("django_rq:home"))
    assert response.status_code == 503
    assert b"Redis is unreachable" in response.content
    record(
        "web",
        "RQ dashboard with Redis down",
        tried=1,
        held=1,
        outcome="503 saying Redis is unreachable",
    )


@pytest.mark.services
def test_only_the_dashboard_allows_inline_scripts(settings, operator_client):
    with jobs_on_redis(settings):
        dashboard = operator_client.get(reverse("django_rq:home"))
    runs = operator_client.get(reverse("runs:dashboard"))
    assert "'unsafe-inline'" in dashboard["Content-Security-Policy"]
    assert "'unsafe-inline'" not in runs["Content-Security-Policy"]
