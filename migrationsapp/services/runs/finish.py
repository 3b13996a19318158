"""How a session ends: completed or failed by its entities, paused or cancelled as asked;
its remaining count and its metrics (with the stage seconds it keeps)."""

from __future__ import annotations

import uuid

from django.utils import timezone

from migrationsapp.models import MigrationControl, MigrationStatus
from migrationsapp.models.choices import (
    AuditAction,
    EntityState,
    LogLevel,
    OperationType,
    SessionStatus,
)
from migrationsapp.selectors.counts import EntityCounts
from migrationsapp.selectors.stages import METRICS_KEY as STAGES_METRICS_KEY
from migrationsapp.selectors.stages import metrics_copy, stage_totals_by_entity
from migrationsapp.services.alerts import alert_session_finished
from migrationsapp.services.logs import log_event
from migrationsapp.services.runs.results import UnitResult
from migrationsapp.services.state import (
    FINISHED_ENTITY,
    refresh_entity_lists,
    transition_entity,
    transition_session,
)


def remaining(session_id: uuid.UUID) -> int:
    """The records the session's entities still have to write."""
    controls = MigrationControl.objects.filter(session_id=session_id)
    return sum(EntityCounts.of(c).remaining for c in controls)


def stop_controls(session_id: uuid.UUID, state: str) -> None:
    """Move every unfinished entity of the session to ``state``, giving its lease back."""
    for control in MigrationControl.objects.filter(session_id=session_id).exclude(
        state__in=FINISHED_ENTITY
    ):
        if control.state != state:
            transition_entity(
                control_id=control.pk, to=state, expected=control.state, lease_owner=""
            )


def finish_cancelled(session_id: uuid.UUID, *, expected: str) -> MigrationStatus:
    """Cancel the session (from ``expected``) and its unfinished entities."""
    stop_controls(session_id, EntityState.CANCELLED)
    session = transition_session(
        session_id=session_id, to=SessionStatus.CANCELLED, expected=expected
    )
    MigrationStatus.objects.filter(migration_session_id=session_id).update(
        performance_metrics={**(session.performance_metrics or {}), **_stage_copy(session)}
    )
    refresh_entity_lists(session_id=session_id)
    log_event(
        session_id=session_id,
        operation=OperationType.CHECKPOINT_SAVE,
        action=AuditAction.SESSION_CANCELLED,
        level=LogLevel.WARN,
        message="session cancelled: what was written stays in the destination, with its record map "
        "entries; the next run continues from there",
    )
    return session


def _finish_stopped(session_id: uuid.UUID, how: UnitResult) -> MigrationStatus:
    if how == UnitResult.LOST:
        # Taken over (resume of a stale lease): the new holder finishes the session.
        return MigrationStatus.objects.get(migration_session_id=session_id)
    if how == UnitResult.CANCELLED:
        return finish_cancelled(session_id, expected=SessionStatus.RUNNING)
    stop_controls(session_id, EntityState.PAUSED)
    transition_session(
        session_id=session_id, to=SessionStatus.PAUSED, expected=SessionStatus.RUNNING
    )
    refresh_entity_lists(session_id=session_id)
    log_event(
        session_id=session_id,
        operation=OperationType.CHECKPOINT_SAVE,
        action=AuditAction.SESSION_PAUSED,
        message="session paused after its last checkpoint; resume continues from there",
    )
    return MigrationStatus.objects.get(migration_session_id=session_id)


def finish_by_entities(session_id: uuid.UUID) -> MigrationStatus:
    """End a running session ``completed`` when every entity completed, else ``failed``."""
    states = set(
        MigrationControl.objects.filter(session_id=session_id).values_list("state", flat=True)
    )
    final = SessionStatus.COMPLETED if states <= {EntityState.COMPLETED} else SessionStatus.FAILED
    MigrationStatus.objects.filter(migration_session_id=session_id).update(
        total_records_remaining=remaining(session_id),
        performance_metrics=_metrics(session_id),
    )
    session = transition_session(session_id=session_id, to=final, expected=SessionStatus.RUNNING)
    refresh_entity_lists(session_id=session_id)
    log_event(
        session_id=session_id,
        operation=OperationType.RECORD_MIGRATION,
        action=AuditAction.SESSION_FINISHED,
        level=LogLevel.INFO if final == SessionStatus.COMPLETED else LogLevel.ERROR,
        message=f"session {final}: {session.total_records_processed} records processed",
    )
    alert_session_finished(session_id=session_id)  # failed, or completed with failures
    return session


def finish_session(*, session_id: uuid.UUID, stopped: UnitResult | None = None) -> MigrationStatus:
    """End a running session none of whose units holds a lease any more: ``paused`` or
    ``cancelled`` as asked (``stopped``; ``lost``: left to the executor that took it over),
    else completed or failed by its entities."""
    if stopped:
        return _finish_stopped(session_id, UnitResult(stopped))
    return finish_by_entities(session_id)


def _metrics(session_id: uuid.UUID) -> dict:
    session = MigrationStatus.objects.get(migration_session_id=session_id)
    elapsed = (timezone.now() - (session.started_at or timezone.now())).total_seconds()
    rows = session.total_records_processed
    return {
        "elapsed_s": round(elapsed, 3),
        "rows_per_s": round(rows / elapsed, 1) if elapsed > 0 else 0.0,
        **_stage_copy(session),
    }


def _stage_copy(session: MigrationStatus) -> dict:
    """The session's stage seconds per entity (selectors.stages), kept with its metrics when
    it ends: the checkpoints that hold them are removed by retention 30 days later. Only the
    session's finisher writes performance_metrics (after its compare-and-set transition)."""
    by_entity = stage_totals_by_entity(session.migration_session_id)
    if by_entity is None:  # gone already: the copy made when it ended before stays
        kept = (session.performance_metrics or {}).get(STAGES_METRICS_KEY)
        return {STAGES_METRICS_KEY: kept} if kept else {}
    return {STAGES_METRICS_KEY: metrics_copy(by_entity)}
