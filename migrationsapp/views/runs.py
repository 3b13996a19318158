"""The runs dashboard: recent sessions, and the two-step launch (analyse, then confirm).

Thin views: the analysis, the launch and the execution are services; what the pages show
comes from ``selectors.progress``. The dashboard's own URL answers an htmx poll with the
sessions table alone: every 3 s while a session is active, every 15 s otherwise (so that a
run launched elsewhere still shows up).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from migrationsapp.engine.errors import DiffmigError
from migrationsapp.selectors.dashboard import entity_rows, worker_state
from migrationsapp.selectors.progress import (
    analysis_row,
    any_session_active,
    launch_availability,
    launchable_entities,
    recent_sessions,
    sessions_holding,
)
from migrationsapp.selectors.workers import queue_health
from migrationsapp.services.analysis import analyze_entities
from migrationsapp.services.mappings import load_active_mapping
from migrationsapp.services.runs import (
    LaunchRefusedError,
    RunOptions,
    entities_with_dependencies,
    start_run,
)
from migrationsapp.views.runs_forms import ConfirmLaunchForm, LaunchForm

from .access import permission_required

VIEW_SESSIONS = "migrationsapp.view_migrationstatus"
LAUNCH = "migrationsapp.launch_migration"


def _entities_context() -> dict:
    health = queue_health()
    return {"entity_rows": entity_rows(), "workers": worker_state(health), "health": health}


def _dashboard(request: HttpRequest, *, status: int = 200, **launch) -> HttpResponse:
    """The full page; ``launch`` fills its launch panel (form, analysis, errors)."""
    may_launch = request.user.has_perm(LAUNCH)
    context = {
        "sessions": recent_sessions(),
        "active": any_session_active(),
        **_entities_context(),
        "may_launch": may_launch,
        **(_launch_context(launch) if may_launch else {}),
    }
    return render(request, "runs/dashboard.html", context, status=status)


def _launch_context(launch: dict) -> dict:
    availability = launch_availability()
    form = launch.get("form") or LaunchForm(choices=availability.entities)
    analysis = launch.get("analysis")
    # Between the analysis and the launch another session may have taken an entity.
    blocked = {
        name: availability.busy[name]
        for name in (analysis or {}).get("entities", [])
        if name in availability.busy
    }
    return {
        "form": form,
        "analysis": analysis,
        "availability": availability,
        "launch_blocked": blocked,
        "error": launch.get("error"),
        "holders": launch.get("holders") or {},
    }


def _launch_panel(request: HttpRequest, *, status: int = 200, **launch) -> HttpResponse:
    """The launch panel alone for htmx (always 200: htmx swaps no 4xx), else the page."""
    if request.htmx:
        return render(request, "runs/dashboard.html#launch-panel", _launch_context(launch))
    return _dashboard(request, status=status, **launch)


@login_required
@permission_required(VIEW_SESSIONS, raise_exception=True)
@require_GET
@vary_on_headers("HX-Request")
def dashboard(request: HttpRequest) -> HttpResponse:
    if request.htmx and request.GET.get("panel") == "entities":
        return render(request, "runs/_entity_health.html", _entities_context())
    if request.htmx:
        return render(
            request,
            "partials/_session_table.html",
            {
                "sessions": recent_sessions(),
                "active": any_session_active(),
                "health": queue_health(),
            },
        )
    return _dashboard(request)


def _run_entities(chosen: list[str]) -> list[str]:
    return entities_with_dependencies(load_active_mapping(), chosen or None)


@login_required
@permission_required(LAUNCH, raise_exception=True)
@require_POST
def analyze(request: HttpRequest) -> HttpResponse:
    """Step 1: analyse the chosen entities (and those they depend on); show what would change."""
    form = LaunchForm(request.POST, choices=launchable_entities())
    if not form.is_valid():
        return _launch_panel(request, form=form, status=400)
    try:
        names = _run_entities(form.cleaned_data["entities"])
        if not names:
            raise LaunchRefusedError(
                "there is no active mapping to run",
                hint="Import one first: diffmig mappings import FILE",
            )
        _, results = analyze_entities(entities=names)
        active = load_active_mapping(entities=names)
    except DiffmigError as error:
        return _launch_panel(request, form=form, error=error, status=400)
    rows = [analysis_row(active.entity(result.entity), result.counts) for result in results]
    analysis = {
        "rows": rows,
        "entities": names,
        "deletes": sum(row.deleted for row in rows),
        "changes": sum(row.changes for row in rows),
        "source_records": sum(row.source_records for row in rows),
        # A baseline writes every source record again, unchanged ones included.
        "writes": sum(
            row.source_records if form.baseline else row.new + row.modified + row.retry
            for row in rows
        ),
        "guarded": [row for row in rows if row.guard],
        "baseline": form.baseline,
        "dry_run": form.cleaned_data["dry_run"],
        "batch_size": form.cleaned_data["batch_size"],
        "mode": form.cleaned_data["mode"],
    }
    return _launch_panel(request, form=form, analysis=analysis)


@login_required
@permission_required(LAUNCH, raise_exception=True)
@require_POST
def launch(request: HttpRequest) -> HttpResponse:
    """Step 2: launch what was analysed and confirmed, execute it, go to its page."""
    choices = launchable_entities()
    first = LaunchForm(request.POST, choices=choices)
    if not first.is_valid():
        return _dashboard(request, form=first, status=400)
    try:
        names = _run_entities(first.cleaned_data["entities"])
    except DiffmigError as error:
        return _dashboard(request, form=first, error=error, status=400)
    form = ConfirmLaunchForm(request.POST, choices=choices, run_entities=names)
    if not form.is_valid():
        errors = "; ".join(str(e) for field in form.errors.values() for e in field)
        return _dashboard(request, form=first, error=errors, status=400)
    options = RunOptions(
        baseline=form.baseline,
        dry_run=form.cleaned_data["dry_run"],
        batch_size=form.cleaned_data["batch_size"],
        confirmed_deletes=form.confirmed_deletes(),
    )
    try:
        started = start_run(
            entities=names, options=options, user=request.user.get_username(), background=True
        )
    except LaunchRefusedError as error:
        return _dashboard(
            request, form=first, error=error, holders=sessions_holding(names), status=409
        )
    except DiffmigError as error:
        return _dashboard(request, form=first, error=error, status=400)
    messages.success(request, f"Session launched for {', '.join(names)}.")
    return redirect("runs:session", session_id=started.session.migration_session_id)
