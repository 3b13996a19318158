"""One session's page: live progress, the log that follows, pause / resume / cancel.

The page polls itself (htmx) for the progress fragment every second and gets status 286,
which stops the polling, once the session is finished. The log panel asks only for the
entries after the last id it has and appends them. The control buttons post to services;
the same URLs work as plain forms without JavaScript.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from migrationsapp.engine.errors import DiffmigError
from migrationsapp.models import MigrationStatus
from migrationsapp.models.choices import LogLevel
from migrationsapp.selectors.logs import parse_level
from migrationsapp.selectors.progress import (
    DEFAULT_LOG_LEVEL,
    log_after,
    log_tail,
    session_progress,
)
from migrationsapp.selectors.throughput import throughput_chart
from migrationsapp.selectors.workers import queue_health
from migrationsapp.services.dispatch import on_workers
from migrationsapp.services.runs import request_cancel, request_pause, resume_run

from .access import permission_required

VIEW_SESSIONS = "migrationsapp.view_migrationstatus"
VIEW_LOGS = "migrationsapp.view_migrationexecutionlog"
CONTROL = "migrationsapp.control_migration"
VIEW_QUARANTINE = "migrationsapp.view_quarantinedrecord"
STOP_POLLING = 286  # htmx stops polling on this status
LOG_PAGE = 200
# A finished session may still write its closing log entries for a moment.
LOG_SETTLE = dt.timedelta(seconds=3)


def _progress_context(request: HttpRequest, session: MigrationStatus, **extra) -> dict:
    return {
        "progress": session_progress(session),
        "chart": throughput_chart(session_id=session.migration_session_id),
        "may_control": request.user.has_perm(CONTROL),
        "may_view_quarantine": request.user.has_perm(VIEW_QUARANTINE),
        # Whether a worker is there to move it: only for a live session on the workers.
        "health": None if session.is_finished or not on_workers(session) else queue_health(),
        **extra,
    }


def _progress_fragment(request: HttpRequest, session: MigrationStatus, **extra) -> HttpResponse:
    return render(
        request,
        "partials/_session_progress.html",
        _progress_context(request, session, **extra),
        status=STOP_POLLING if session.is_finished else 200,
    )


@login_required
@permission_required(VIEW_SESSIONS, raise_exception=True)
@require_GET
@vary_on_headers("HX-Request")
def session_detail(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    session = get_object_or_404(MigrationStatus, migration_session_id=session_id)
    if request.htmx:
        return _progress_fragment(request, session)
    entries = log_tail(session_id=session_id) if request.user.has_perm(VIEW_LOGS) else []
    context = _progress_context(
        request,
        session,
        entries=entries,
        last_log_id=entries[-1].id if entries else 0,
        may_view_logs=request.user.has_perm(VIEW_LOGS),
        log_live=not _log_finished(session),
    )
    return render(request, "runs/session.html", context)


def _log_finished(session: MigrationStatus) -> bool:
    """True once a finished session can write no more log entries."""
    if not session.is_finished:
        return False
    return session.completed_at is None or timezone.now() - session.completed_at > LOG_SETTLE


@login_required
@permission_required(VIEW_LOGS, raise_exception=True)
@require_GET
@vary_on_headers("HX-Request")
def session_log(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    """The entries after ``after`` (an entry id): appended by htmx, or a plain page."""
    session = get_object_or_404(MigrationStatus, migration_session_id=session_id)
    try:
        after = int(request.GET.get("after") or 0)
    except ValueError:
        return HttpResponseBadRequest("after must be an entry id (an integer)")
    if after < 0:
        return HttpResponseBadRequest("after must be an entry id (an integer)")
    try:
        level = parse_level(request.GET.get("level") or DEFAULT_LOG_LEVEL)
    except ValueError as error:
        return HttpResponseBadRequest(str(error))
    entries = log_after(session_id=session_id, after_id=after, limit=LOG_PAGE, level=level)
    context = {
        "session": session,
        "entries": entries,
        "after": after,
        "level": level,
        "levels": [(value, f"{value} and above") for value in reversed(LogLevel.values)],
        "last_log_id": entries[-1].id if entries else after,
        "more": len(entries) == LOG_PAGE,
    }
    if request.htmx:
        done = _log_finished(session) and len(entries) < LOG_PAGE
        return render(
            request,
            "partials/_log_lines.html",
            {**context, "oob": True},
            status=STOP_POLLING if done else 200,
        )
    return render(request, "runs/session_log.html", context)


def _control(request: HttpRequest, session_id: uuid.UUID, action: str) -> HttpResponse:
    session = get_object_or_404(MigrationStatus, migration_session_id=session_id)
    user = request.user.get_username()
    error = None
    try:
        if action == "pause":
            request_pause(session_id=session_id, user=user)
            note = "Pause requested: the run stops after its current batch."
        elif action == "cancel":
            request_cancel(session_id=session_id, user=user)
            note = "Cancel requested: the run stops after its current batch."
        else:
            resume_run(session_id=session_id, user=user, background=True)
            note = "Resumed from the last checkpoints."
    except DiffmigError as failure:
        error, note = failure, ""
    session.refresh_from_db()
    if request.htmx:
        # 200 even on a refusal: htmx swaps no 4xx, and the fragment says what went wrong.
        return render(
            request,
            "partials/_session_progress.html",
            _progress_context(
                request, session, error=error, note=note, restart_log=not _log_finished(session)
            ),
        )
    if error:
        messages.error(request, str(error))
    else:
        messages.success(request, note)
    return redirect("runs:session", session_id=session_id)


@login_required
@permission_required(CONTROL, raise_exception=True)
@require_POST
def pause_session(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    return _control(request, session_id, "pause")


@login_required
@permission_required(CONTROL, raise_exception=True)
@require_POST
def resume_session(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    return _control(request, session_id, "resume")


@login_required
@permission_required(CONTROL, raise_exception=True)
@require_POST
def cancel_session(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    return _control(request, session_id, "cancel")
