"""Verify in the web: the history of verifications, launching one, and a run's report.

A launch stores a pending verification and hands it to the executor (services.verify_runs);
its report page polls itself (htmx) until the run has ended, then status 286 stops the
polling. A completed session's page offers "verify now" for its entities.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from migrationsapp.engine.errors import DiffmigError
from migrationsapp.models import MigrationStatus, VerifyRun
from migrationsapp.selectors.launch import launchable_entities
from migrationsapp.selectors.verify_runs import verify_history, verify_reports
from migrationsapp.selectors.workers import runs_in_workers
from migrationsapp.services.verify_runs import launch_verify

from .access import permission_required

VIEW_SESSIONS = "migrationsapp.view_migrationstatus"
LAUNCH = "migrationsapp.launch_migration"
STOP_POLLING = 286


@permission_required(VIEW_SESSIONS)
@require_GET
def verify_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "verify/list.html",
        {
            "rows": verify_history(),
            "entities": launchable_entities(),
            "may_launch": request.user.has_perm(LAUNCH),
            "on_workers": runs_in_workers(),
        },
    )


@permission_required(LAUNCH)
@require_POST
def verify_launch(request: HttpRequest) -> HttpResponse:
    """Launch a verification of the ticked entities (none: all), or of a session's entities."""
    entities = request.POST.getlist("entities")
    session_id = None
    if request.POST.get("session"):
        try:
            session_id = uuid.UUID(request.POST["session"])
        except ValueError:
            messages.error(request, "session must be a session id")
            return redirect("verify:list")
        session = get_object_or_404(MigrationStatus, migration_session_id=session_id)
        entities = list((session.options or {}).get("entities") or [])
    try:
        run = launch_verify(
            entities=entities, user=request.user.get_username(), session_id=session_id
        )
    except DiffmigError as error:
        messages.error(request, f"{error}" + (f" {error.hint}" if error.hint else ""))
        return redirect("verify:list")
    return redirect("verify:report", run_id=run.id)


@permission_required(VIEW_SESSIONS)
@require_GET
@vary_on_headers("HX-Request")
def verify_report(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    run = get_object_or_404(VerifyRun, pk=run_id)
    context = {"run": run, "reports": verify_reports(run)}
    if request.htmx:
        return render(
            request,
            "verify/report.html#report",
            context,
            status=STOP_POLLING if run.is_finished else 200,
        )
    return render(request, "verify/report.html", context)
