"""The RQ dashboard (django-rq's pages under ``/django-rq/``), guarded.

- Only for users who control runs (``control_migration``), as the README says.
- Without ``REDIS_URL`` there is no queue: jobs run in-process, and the pages say so rather
  than show whatever database 0 of a Redis on localhost holds.
- An unknown queue, job or worker is a 404 and an unreachable Redis a 503, never a 500.
- django-rq's templates carry inline scripts and styles: its pages alone get
  ``'unsafe-inline'`` in the Content-Security-Policy (only users who control runs see them).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

import redis
from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern

from migrationsapp.queue import port
from migrationsapp.queue.port import NoSuchJobError

from .access import permission_required

CONTROL = "migrationsapp.control_migration"
HOME = "home"
# django-rq's URL arguments that index the configured queues (RQ_QUEUES, sorted by name).
INDEX_ARGUMENTS = ("queue_index", "scheduler_index", "connection_index")


def _in_process(request: HttpRequest, *, home: bool) -> HttpResponse:
    return render(
        request,
        "rq/in_process.html",
        {"queues": settings.DIFFMIG_QUEUES},
        status=200 if home else 404,
    )


def _unavailable(request: HttpRequest, error: Exception) -> HttpResponse:
    return render(request, "rq/unreachable.html", {"error": str(error)}, status=503)


def _check_known(kwargs: dict) -> None:
    """404 for a queue index or worker that does not exist (django-rq would raise a 500)."""
    queues = port.configured_queue_count()
    for name in INDEX_ARGUMENTS:
        if name in kwargs and not 0 <= int(kwargs[name]) < queues:
            raise Http404(f"There is no queue number {kwargs[name]}.")
    if "key" in kwargs and not port.worker_registered(kwargs["queue_index"], kwargs["key"]):
        raise Http404(f"There is no worker {kwargs['key']!r}.")


def guarded(view: Callable, *, home: bool) -> Callable:
    @wraps(view)
    def dashboard_page(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not settings.REDIS_URL:
            return _in_process(request, home=home)
        try:
            _check_known(kwargs)
            return view(request, *args, **kwargs)
        except NoSuchJobError as error:
            raise Http404(f"There is no job {kwargs.get('job_id', '')!r}.") from error
        except redis.exceptions.ConnectionError as error:
            return _unavailable(request, error)

    relaxed = csp_update({"script-src": [UNSAFE_INLINE], "style-src": [UNSAFE_INLINE]})
    return login_required(
        permission_required(CONTROL, raise_exception=True)(relaxed(dashboard_page))
    )


def dashboard_urlpatterns() -> list[URLPattern]:
    return [
        URLPattern(
            pattern.pattern,
            guarded(pattern.callback, home=pattern.name == HOME),
            pattern.default_args,
            pattern.name,
        )
        for pattern in port.dashboard_urlpatterns()
    ]
