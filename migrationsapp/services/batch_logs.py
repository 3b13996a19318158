"""A batch's execution-log lines, written inside its control commit: one warning per
failed record (``record.failed``) and one DEBUG line for the batch itself
(``entity.batch_committed``: its counts and its rows per second)."""

from __future__ import annotations

from collections.abc import Sequence

from migrationsapp.engine.batch_loop import BatchCounts
from migrationsapp.engine.outcomes import Phase, RecordAction
from migrationsapp.engine.ports import BatchResult, RecordOutcome
from migrationsapp.models.choices import AuditAction, LogLevel, OperationType
from migrationsapp.services.batch_quarantine import stored_value
from migrationsapp.services.logs import bulk_log, log_event, record_entry
from migrationsapp.services.record_writes import BatchScope

# The rules whose failures are the mapping's validation (the others: the migration's).
VALIDATION_RULES = frozenset({"required", "unique", "format", "range"})


def log_failed_records(scope: BatchScope, outcomes: Sequence[RecordOutcome]) -> None:
    """One entry per failed record: its key, its reason, the rule, field and value."""
    entries = []
    for outcome in outcomes:
        if outcome.action != RecordAction.FAILED:
            continue
        error = outcome.error
        entries.append(
            record_entry(
                session_id=scope.session_id,
                entity=scope.entity,
                record_id=outcome.key_text,
                operation=OperationType.VALIDATION
                if error is not None and error.rule in VALIDATION_RULES
                else OperationType.RECORD_MIGRATION,
                message=f"{scope.entity} {outcome.key_text}: {error}",
                error_details={
                    "rule": getattr(error, "rule", ""),
                    "field": getattr(error, "field", None),
                    "value": None
                    if error is None or error.value is None
                    else stored_value(error.value, 500),
                },
                action=AuditAction.RECORD_FAILED,
            )
        )
    bulk_log(entries)


def log_batch(scope: BatchScope, result: BatchResult, counts: BatchCounts | None = None) -> None:
    """The batch's failed records, then its own line (``counts``: the batch's, when the
    caller has counted them already)."""
    counts = counts or result
    if counts.failed:
        log_failed_records(scope, result.outcomes)
    seconds = max(result.seconds, 1e-6)
    total = len(result.outcomes)
    verb = "deleted" if result.phase == Phase.DELETE else "written"
    log_event(
        session_id=scope.session_id,
        entity=scope.entity,
        operation=OperationType.CHECKPOINT_SAVE,
        # DEBUG: one line per batch would drown the records' warnings at INFO.
        level=LogLevel.DEBUG,
        message=(
            f"{scope.entity}: batch of {total} ({result.phase}): {counts.processed} {verb}, "
            f"{counts.failed} failed, {counts.skipped} skipped, "
            f"{total / seconds:,.0f} rows/s in this batch"
            + (" (dry run: nothing written)" if result.dry_run else "")
        ),
        performance_data={
            "rows": total,
            "seconds": round(result.seconds, 4),
            "rows_per_s": round(total / seconds, 1),
        },
        context={"phase": result.phase, "last_change_id": result.last_change_id},
        action=AuditAction.ENTITY_BATCH_COMMITTED,
    )
