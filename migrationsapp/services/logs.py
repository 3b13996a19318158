"""Writing the execution log: one entry per event, or in bulk for a batch's records.

Every entry says what happened (``action``, an ``AuditAction`` code) and who made it happen
(``actor``): the username of a person who acted, or one of the names below for what no
person asked for directly; "" for the run itself (its analysis, batches, finish).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from migrationsapp.models import MigrationExecutionLog
from migrationsapp.models.choices import AuditAction, LogLevel, OperationType

# Actors that are not a person, where a username would stand: the command line, a run
# schedule, a worker's own round (the watchdog).
CLI_ACTOR = "cli"
SCHEDULE_ACTOR = "schedule"
WORKER_ACTOR = "worker"


def _entry(
    *,
    session_id: uuid.UUID | None,
    operation: str,
    message: str,
    level: str,
    entity: str,
    record_id: str | None,
    error_details: dict[str, Any] | None,
    performance_data: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    action: AuditAction | str = "",
    actor: str = "",
) -> MigrationExecutionLog:
    """An unsaved entry: the one place that says which column holds what."""
    if action:
        action = AuditAction(action)  # a code not in the list is a bug, refused here
    return MigrationExecutionLog(
        action=action,
        actor=actor,
        session_id=session_id,
        entity_type=entity,
        operation_type=operation,
        log_level=level,
        message=message,
        record_id=record_id,
        error_details=error_details,
        performance_data=performance_data,
        context_data=context or {},
        timestamp=timezone.now(),
    )


def log_event(
    *,
    session_id: uuid.UUID | None,
    operation: str,
    message: str,
    level: str = LogLevel.INFO,
    entity: str = "",
    record_id: str | None = None,
    error_details: dict[str, Any] | None = None,
    performance_data: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    action: AuditAction | str = "",
    actor: str = "",
) -> MigrationExecutionLog:
    """Write one entry now. ``action`` says what happened (``AuditAction``), ``actor`` who
    made it happen."""
    entry = _entry(**locals())  # the parameters as given: nothing else is bound yet
    entry.save(force_insert=True)
    return entry


def record_entry(
    *,
    session_id: uuid.UUID | None,
    entity: str,
    record_id: str,
    message: str,
    level: str = LogLevel.WARN,
    operation: str = OperationType.RECORD_MIGRATION,
    error_details: dict[str, Any] | None = None,
    action: AuditAction | str = AuditAction.RECORD_FAILED,
) -> MigrationExecutionLog:
    """An unsaved per-record entry, for ``bulk_log``."""
    return _entry(**locals())  # the parameters as given


def bulk_log(entries: Iterable[MigrationExecutionLog]) -> None:
    MigrationExecutionLog.objects.bulk_create(list(entries), batch_size=1000)
