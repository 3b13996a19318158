"""Writing the execution log: one entry per event, or in bulk for a batch's records."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from migrationsapp.models import MigrationExecutionLog
from migrationsapp.models.choices import LogLevel, OperationType


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
) -> MigrationExecutionLog:
    return MigrationExecutionLog.objects.create(
        session_id=session_id,
        entity_type=entity,
        operation_type=operation,
        log_level=level,
        message=message,
        record_id=record_id,
        error_details=error_details,
        performance_data=performance_data,
        context_data=context or {},
    )


def record_entry(
    *,
    session_id: uuid.UUID | None,
    entity: str,
    record_id: str,
    message: str,
    level: str = LogLevel.WARN,
    operation: str = OperationType.RECORD_MIGRATION,
    error_details: dict[str, Any] | None = None,
) -> MigrationExecutionLog:
    """An unsaved per-record entry, for ``bulk_log``."""
    return MigrationExecutionLog(
        session_id=session_id,
        entity_type=entity,
        operation_type=operation,
        log_level=level,
        message=message,
        record_id=record_id,
        error_details=error_details,
        context_data={},
        timestamp=timezone.now(),
    )


def bulk_log(entries: Iterable[MigrationExecutionLog]) -> None:
    MigrationExecutionLog.objects.bulk_create(list(entries), batch_size=1000)
