"""Reads of the execution log: filtered, the latest entries of a session (the log panel),
and only after the last entry a reader has."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from migrationsapp.models import MigrationExecutionLog
from migrationsapp.models.choices import LogLevel, levels_at_or_above

LEVEL_ALIASES = {"warning": "warn", "err": "error"}

# The log panels show INFO and up unless asked: a batch's line is DEBUG, so that the warnings
# and errors of records stand out.
DEFAULT_LOG_LEVEL = LogLevel.INFO


def parse_level(text: str) -> str:
    """A level name as users type it (any case, `warning` for `warn`)."""
    word = LEVEL_ALIASES.get(text.strip().lower(), text.strip().lower())
    if word not in LogLevel.values:
        raise ValueError(f"unknown level {text!r}: use one of {', '.join(LogLevel.values)}")
    return word


def session_logs(
    *,
    session_id: uuid.UUID,
    level: str | None = None,
    entity: str | None = None,
    after_id: int = 0,
    limit: int | None = None,
) -> QuerySet[MigrationExecutionLog]:
    query = MigrationExecutionLog.objects.filter(session_id=session_id, id__gt=after_id)
    if level:
        query = query.filter(log_level__in=levels_at_or_above(level))
    if entity:
        query = query.filter(entity_type=entity)
    query = query.order_by("id")
    return query[:limit] if limit else query


def log_tail(
    *, session_id: uuid.UUID, limit: int = 100, level: str | None = DEFAULT_LOG_LEVEL
) -> list[MigrationExecutionLog]:
    """The last ``limit`` entries of a session at ``level`` or above, oldest first."""
    latest = MigrationExecutionLog.objects.filter(session_id=session_id)
    if level:
        latest = latest.filter(log_level__in=levels_at_or_above(level))
    return list(reversed(latest.order_by("-id")[:limit]))


def log_after(
    *,
    session_id: uuid.UUID,
    after_id: int,
    limit: int = 200,
    level: str | None = DEFAULT_LOG_LEVEL,
) -> list[MigrationExecutionLog]:
    """Entries at ``level`` or above after the last one a reader has, oldest first, at most
    ``limit``."""
    return list(session_logs(session_id=session_id, after_id=after_id, limit=limit, level=level))


def log_entry_document(entry: MigrationExecutionLog) -> dict:
    """One entry as `diffmig logs --json` prints it (docs/cli.md)."""
    return {
        "id": entry.id,
        "time": entry.timestamp.isoformat(),
        "level": entry.log_level,
        "operation": entry.operation_type,
        "action": entry.action,
        "actor": entry.actor,
        "entity": entry.entity_type,
        "record": entry.record_id,
        "message": entry.message,
        "context": entry.context_data,
        "error_details": entry.error_details,
    }


def format_log_line(entry: MigrationExecutionLog) -> str:
    """time, level, operation, entity, key (or -), message."""
    return "  ".join(
        [
            entry.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            entry.log_level.upper().ljust(5),
            entry.operation_type,
            entry.entity_type or "-",
            entry.record_id or "-",
            entry.message,
        ]
    )
