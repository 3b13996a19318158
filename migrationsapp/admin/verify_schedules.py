"""Read-only admin of stored verifications and run schedules.

Verifications are launched and schedules managed from their pages (``/verify/``,
``/schedules/``) through their services; the admin shows them and never writes them.
"""

from __future__ import annotations

from django.contrib import admin

from migrationsapp.models import RunSchedule, VerifyEntityReport, VerifyRun

from .base import ReadOnlyAdmin, entity_filter


@admin.register(VerifyRun)
class VerifyRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "state", "launched_by", "session_id", "created_at", "finished_at")
    list_filter = ("state", ("created_at", admin.DateFieldListFilter))
    exact_search_fields = ("launched_by",)
    uuid_search_fields = ("id", "session_id")
    ordering = ("-created_at",)


@admin.register(VerifyEntityReport)
class VerifyEntityReportAdmin(ReadOnlyAdmin):
    list_display = (
        "run",
        "entity_type",
        "equal",
        "compared",
        "missing",
        "extra",
        "different_records",
        "quarantined",
        "stale",
    )
    list_filter = (entity_filter(), "equal")
    exact_search_fields = ("entity_type",)
    ordering = ("run", "position")


@admin.register(RunSchedule)
class RunScheduleAdmin(ReadOnlyAdmin):
    list_display = ("name", "paused", "interval_hours", "cron", "next_run_at", "last_outcome")
    list_filter = ("paused", "last_outcome")
    exact_search_fields = ("name",)
    ordering = ("name",)
