"""Schedules of differential runs: the list with each next run, create, pause, resume, delete.

The workers' watchdog fires them (services.run_schedules); without REDIS_URL there is no
worker, and the page says that the schedules wait for one.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from migrationsapp.engine.errors import DiffmigError
from migrationsapp.models import RunSchedule
from migrationsapp.selectors.launch import launchable_entities
from migrationsapp.selectors.verify_runs import schedules_overview
from migrationsapp.selectors.workers import runs_in_workers
from migrationsapp.services.run_schedules import (
    create_schedule,
    delete_schedule,
    pause_schedule,
    resume_schedule,
)
from migrationsapp.views.schedules_forms import ScheduleForm

from .access import permission_required

VIEW_SESSIONS = "migrationsapp.view_migrationstatus"
LAUNCH = "migrationsapp.launch_migration"


def _page(request: HttpRequest, *, form: ScheduleForm | None = None, status: int = 200):
    return render(
        request,
        "schedules/list.html",
        {
            "schedules": schedules_overview(),
            "form": form or ScheduleForm(choices=launchable_entities()),
            "may_manage": request.user.has_perm(LAUNCH),
            "on_workers": runs_in_workers(),
        },
        status=status,
    )


@permission_required(VIEW_SESSIONS)
@require_GET
def schedule_list(request: HttpRequest) -> HttpResponse:
    return _page(request)


@permission_required(LAUNCH)
@require_POST
def schedule_create(request: HttpRequest) -> HttpResponse:
    form = ScheduleForm(request.POST, choices=launchable_entities())
    if not form.is_valid():
        return _page(request, form=form, status=400)
    data = form.cleaned_data
    try:
        schedule = create_schedule(
            name=data["name"],
            entities=data["entities"],
            interval_hours=data["interval_hours"],
            cron=data["cron"] or "",
            user=request.user.get_username(),
        )
    except DiffmigError as error:
        form.add_error(None, f"{error}" + (f" {error.hint}" if error.hint else ""))
        return _page(request, form=form, status=400)
    messages.success(
        request,
        f"Schedule {schedule.name} created: next run {schedule.next_run_at:%Y-%m-%d %H:%M} UTC.",
    )
    return redirect("schedules:list")


def _act(request: HttpRequest, schedule_id: uuid.UUID, action: str) -> HttpResponse:
    schedule = get_object_or_404(RunSchedule, pk=schedule_id)
    user = request.user.get_username()
    if action == "pause":
        done = pause_schedule(schedule_id=schedule_id, user=user)
        text = (
            f"Schedule {schedule.name} paused." if done else f"{schedule.name} was paused already."
        )
    elif action == "resume":
        done = resume_schedule(schedule_id=schedule_id, user=user)
        text = f"Schedule {schedule.name} resumed." if done else f"{schedule.name} was not paused."
    else:
        delete_schedule(schedule_id=schedule_id, user=user)
        text = f"Schedule {schedule.name} deleted."
    messages.success(request, text)
    return redirect("schedules:list")


@permission_required(LAUNCH)
@require_POST
def schedule_pause(request: HttpRequest, schedule_id: uuid.UUID) -> HttpResponse:
    return _act(request, schedule_id, "pause")


@permission_required(LAUNCH)
@require_POST
def schedule_resume(request: HttpRequest, schedule_id: uuid.UUID) -> HttpResponse:
    return _act(request, schedule_id, "resume")


@permission_required(LAUNCH)
@require_POST
def schedule_delete(request: HttpRequest, schedule_id: uuid.UUID) -> HttpResponse:
    return _act(request, schedule_id, "delete")
