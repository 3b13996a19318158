"""Read-only admin of the audit trail: execution log, record map, record events, quarantine.

These are the tables that grow by millions of rows: newest first by their growing id,
sortable only on indexed columns, searched by exact value (see ``base``).
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.text import Truncator

from migrationsapp.models import MigrationExecutionLog, QuarantinedRecord, RecordEvent, RecordMap

from .base import ReadOnlyAdmin, entity_filter, session_column


def _short(text: str | None, length: int = 80) -> str:
    return Truncator(text or "").chars(length)


class NullDateFilter(admin.SimpleListFilter):
    """Yes / no on a nullable timestamp (``resolved_at``, ``deleted_at``)."""

    field = ""

    def lookups(self, request, model_admin):
        return [("yes", "yes"), ("no", "no")]

    def queryset(self, request, queryset):
        if self.value() in {"yes", "no"}:
            return queryset.filter(**{f"{self.field}__isnull": self.value() == "no"})
        return queryset


class ResolvedFilter(NullDateFilter):
    title = "resolved"
    parameter_name = "resolved"
    field = "resolved_at"


class DeletedFilter(NullDateFilter):
    title = "deleted from the source"
    parameter_name = "deleted"
    field = "deleted_at"


@admin.register(MigrationExecutionLog)
class MigrationExecutionLogAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "timestamp",
        "log_level",
        "operation_type",
        "entity_type",
        "record_id",
        "short_message",
        session_column,
    )
    list_filter = (
        "log_level",
        "operation_type",
        entity_filter(),
        ("timestamp", admin.DateFieldListFilter),
    )
    exact_search_fields = ("record_id", "entity_type")
    uuid_search_fields = ("session_id",)
    raw_id_fields = ("session",)
    # The session is shown from the FK column (its migration_session_id): no join.
    list_select_related = ()
    ordering = ("-id",)
    sortable_by = ("id", "timestamp")

    @admin.display(description="message")
    def short_message(self, obj: MigrationExecutionLog) -> str:
        return _short(obj.message)


@admin.register(RecordMap)
class RecordMapAdmin(ReadOnlyAdmin):
    list_display = (
        "entity_type",
        "legacy_key_text",
        "destination_uuid",
        "mapping_version",
        "last_migrated_at",
        "deleted_at",
    )
    list_filter = (entity_filter(), DeletedFilter, ("last_migrated_at", admin.DateFieldListFilter))
    exact_search_fields = ("legacy_key_text", "entity_type")
    uuid_search_fields = ("destination_uuid", "first_session_id", "last_session_id")
    raw_id_fields = ("first_session", "last_session")
    list_select_related = ()
    ordering = ("-id",)
    sortable_by = ("entity_type",)


@admin.register(RecordEvent)
class RecordEventAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "occurred_at",
        "entity_type",
        "legacy_key_text",
        "action",
        "mapping_version",
        "short_reason",
        session_column,
    )
    list_filter = ("action", entity_filter(), ("occurred_at", admin.DateFieldListFilter))
    exact_search_fields = ("legacy_key_text", "entity_type")
    uuid_search_fields = ("session_id", "destination_uuid")
    raw_id_fields = ("session",)
    list_select_related = ()
    ordering = ("-id",)
    sortable_by = ("id", "occurred_at")

    @admin.display(description="reason")
    def short_reason(self, obj: RecordEvent) -> str:
        return _short(obj.reason)


@admin.register(QuarantinedRecord)
class QuarantinedRecordAdmin(ReadOnlyAdmin):
    """Shown here; operators mark records for retry or resolved on the runs dashboard."""

    list_display = (
        "entity_type",
        "legacy_key_text",
        "rule",
        "field",
        "short_reason",
        "mapping_version",
        "last_seen_at",
        "resolved_at",
    )
    list_filter = (
        entity_filter(),
        ResolvedFilter,
        ("last_seen_at", admin.DateFieldListFilter),
    )
    exact_search_fields = ("legacy_key_text", "entity_type")
    uuid_search_fields = ("last_session_id",)
    raw_id_fields = ("last_session",)
    list_select_related = ()
    ordering = ("-id",)
    sortable_by = ("entity_type", "last_seen_at")

    @admin.display(description="reason")
    def short_reason(self, obj: QuarantinedRecord) -> str:
        return _short(obj.reason)
