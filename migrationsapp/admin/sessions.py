"""Read-only admin of sessions, entity runs, checkpoints and analyses.

Sessions change state through ``services.state`` only (by compare-and-set), from the runs
dashboard and the CLI; the admin shows them and never writes them.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from migrationsapp.models import (
    AnalysisChange,
    DifferentialAnalysisResult,
    MigrationCheckpoint,
    MigrationControl,
    MigrationStatus,
)

from .base import ReadOnlyAdmin, entity_filter, session_column


@admin.register(MigrationStatus)
class MigrationStatusAdmin(ReadOnlyAdmin):
    list_display = (
        "migration_session_id",
        "overall_status",
        "launched_by",
        "started_at",
        "completed_at",
        "total_records_processed",
        "total_records_remaining",
    )
    list_filter = ("overall_status", ("created_at", admin.DateFieldListFilter))
    exact_search_fields = ("launched_by",)
    uuid_search_fields = ("migration_session_id", "id")
    ordering = ("-created_at",)
    sortable_by = ("started_at", "completed_at")


@admin.register(MigrationControl)
class MigrationControlAdmin(ReadOnlyAdmin):
    list_display = (
        "entity_type",
        session_column,
        "state",
        "mode",
        "phase",
        "processed_count",
        "failed_count",
        "skipped_count",
        "attempts",
        "lease_heartbeat",
    )
    list_filter = (
        "state",
        "mode",
        entity_filter(),
        ("created_at", admin.DateFieldListFilter),
    )
    exact_search_fields = ("entity_type",)
    # The FK column holds the session's migration_session_id: no join needed to match it.
    uuid_search_fields = ("session_id", "run_id", "id")
    raw_id_fields = ("session", "analysis")
    list_select_related = ()
    ordering = ("-created_at",)
    sortable_by = ("entity_type",)


@admin.register(MigrationCheckpoint)
class MigrationCheckpointAdmin(ReadOnlyAdmin):
    list_display = (
        "entity_type",
        "unit",
        "state",
        "batch_position",
        "records_processed",
        "records_remaining",
        "migration_run",
        "updated_at",
    )
    list_filter = ("state", entity_filter(), ("updated_at", admin.DateFieldListFilter))
    exact_search_fields = ("entity_type", "last_processed_id")
    uuid_search_fields = ("migration_run_id", "migration_run__session_id", "id")
    raw_id_fields = ("migration_run",)
    list_select_related = ("migration_run",)
    ordering = ("-updated_at",)
    sortable_by = ("entity_type", "updated_at")


@admin.register(DifferentialAnalysisResult)
class DifferentialAnalysisResultAdmin(ReadOnlyAdmin):
    # An analysis still `reading` its source has no counts yet: its status and the rows it
    # has read say so, rather than a row of zeros that reads as "nothing changed".
    list_display = (
        "analysis_timestamp",
        "entity_type",
        "detection",
        "status",
        "rows_seen",
        "mapping_version",
        "new_count",
        "modified_count",
        "deleted_count",
        "unchanged_count",
        "retry_count",
        session_column,
    )
    list_filter = (
        "status",
        "detection",
        entity_filter(),
        ("analysis_timestamp", admin.DateFieldListFilter),
    )
    exact_search_fields = ("entity_type",)
    uuid_search_fields = ("id", "session_id")
    raw_id_fields = ("session",)
    list_select_related = ()
    readonly_fields = ("change_set",)
    ordering = ("-analysis_timestamp",)
    sortable_by = ("analysis_timestamp", "entity_type")

    @admin.display(description="change set")
    def change_set(self, obj: DifferentialAnalysisResult):
        # The change set may hold millions of keys: a link to its filtered list, not an inline.
        url = reverse("admin:migrationsapp_analysischange_changelist")
        return format_html('<a href="{}?analysis__id__exact={}">every changed key</a>', url, obj.pk)


@admin.register(AnalysisChange)
class AnalysisChangeAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "legacy_key_text", "content_hash", "analysis")
    list_filter = ("kind", entity_filter("analysis__entity_type"))
    exact_search_fields = ("legacy_key_text",)
    uuid_search_fields = ("analysis_id",)
    raw_id_fields = ("analysis",)
    list_select_related = ("analysis",)
    ordering = ("-id",)
    sortable_by = ("id",)
