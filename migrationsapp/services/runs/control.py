"""An operator's control of a session: pause, cancel, and resume's preparation.

Pause and cancel are requests stored on the session; the executor stops after its current
batch. When nothing executes the session (no fresh lease), the request takes effect at once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.utils import timezone

from migrationsapp.engine.errors import StateTransitionError
from migrationsapp.models import MigrationCheckpoint, MigrationControl, MigrationStatus
from migrationsapp.models.choices import (
    AuditAction,
    EntityState,
    OperationType,
    SessionStatus,
)
from migrationsapp.services.logs import CLI_ACTOR, log_event
from migrationsapp.services.runs.finish import finish_cancelled, stop_controls
from migrationsapp.services.state import (
    FINISHED_SESSION,
    refresh_entity_lists,
    transition_entity,
    transition_session,
)


def lease_is_fresh(session_id: uuid.UUID) -> bool:
    """Whether something executes the session: one of its leases was renewed lately."""
    horizon = timezone.now() - dt.timedelta(seconds=settings.DIFFMIG_LEASE_TIMEOUT)
    return (
        MigrationControl.objects.filter(
            session_id=session_id, state=EntityState.RUNNING, lease_heartbeat__gte=horizon
        ).exists()
        or MigrationCheckpoint.objects.filter(
            migration_run__session_id=session_id,
            migration_run__state=EntityState.RUNNING,
            lease_heartbeat__gte=horizon,
        )
        .exclude(lease_owner="")
        .exists()
    )


def request_pause(*, session_id: uuid.UUID, user: str = "") -> MigrationStatus:
    """Ask a running session to pause; it stops after its current batch."""
    session = MigrationStatus.objects.get(migration_session_id=session_id)
    if session.overall_status != SessionStatus.RUNNING:
        raise StateTransitionError(
            f"session {session_id} is {session.overall_status}: "
            "only a running session can be paused"
        )
    MigrationStatus.objects.filter(
        migration_session_id=session_id, overall_status=SessionStatus.RUNNING
    ).update(pause_requested_at=timezone.now())
    _log_request(session_id, AuditAction.SESSION_PAUSE_REQUESTED, "pause requested", user)
    if not lease_is_fresh(session_id):
        # Nobody is executing it (the process is gone, or RQ is between two units): pause
        # it now — unless the executor's own dispatch stopped it in the meantime.
        with _unless_stopped_meanwhile(session_id, SessionStatus.PAUSED):
            stop_controls(session_id, EntityState.PAUSED)
            transition_session(
                session_id=session_id, to=SessionStatus.PAUSED, expected=SessionStatus.RUNNING
            )
    return MigrationStatus.objects.get(migration_session_id=session_id)


@contextmanager
def _unless_stopped_meanwhile(session_id: uuid.UUID, target: str) -> Iterator[None]:
    """An operator's stop racing the executor's: losing is fine when the session already
    reached ``target`` or ended; any other refusal stands."""
    try:
        yield
    except StateTransitionError:
        now = MigrationStatus.objects.get(migration_session_id=session_id).overall_status
        if now != target and now not in FINISHED_SESSION:
            raise


def request_cancel(*, session_id: uuid.UUID, user: str = "") -> MigrationStatus:
    """Cancel a session: at once when nothing executes it, else after the current batch."""
    session = MigrationStatus.objects.get(migration_session_id=session_id)
    status = session.overall_status
    if status not in (SessionStatus.PENDING, SessionStatus.RUNNING, SessionStatus.PAUSED):
        raise StateTransitionError(f"session {session_id} is {status}: it cannot be cancelled")
    MigrationStatus.objects.filter(migration_session_id=session_id).update(
        cancel_requested_at=timezone.now()
    )
    _log_request(session_id, AuditAction.SESSION_CANCEL_REQUESTED, "cancel requested", user)
    if status != SessionStatus.RUNNING or not lease_is_fresh(session_id):
        with _unless_stopped_meanwhile(session_id, SessionStatus.CANCELLED):
            finish_cancelled(session_id, expected=status)
    return MigrationStatus.objects.get(migration_session_id=session_id)


def prepare_resume(*, session_id: uuid.UUID, user: str = "") -> MigrationStatus:
    """Move a paused or failed session back to running; its entities continue from checkpoints.

    A session still ``running`` whose leases are all stale (its process died: nothing
    renewed them for DIFFMIG_LEASE_TIMEOUT seconds) is taken over the same way. While a
    lease is fresh it is refused: the session is still being executed.
    """
    status = (
        MigrationStatus.objects.filter(migration_session_id=session_id)
        .values_list("overall_status", flat=True)
        .get()
    )
    if status == SessionStatus.RUNNING:
        if lease_is_fresh(session_id):
            raise StateTransitionError(
                f"session {session_id} is running: a worker holds it",
                hint="Pause it first, or wait until its lease is "
                f"{settings.DIFFMIG_LEASE_TIMEOUT} s old if its worker died.",
            )
        # The entities' compare-and-set below takes the leases away from the dead owner: if it
        # was only slow, its next checkpoint fails with LeaseLostError and it stops.
        MigrationStatus.objects.filter(
            migration_session_id=session_id, overall_status=SessionStatus.RUNNING
        ).update(pause_requested_at=None, updated_at=timezone.now())
        session = MigrationStatus.objects.get(migration_session_id=session_id)
    else:
        session = transition_session(
            session_id=session_id,
            to=SessionStatus.RUNNING,
            expected=(SessionStatus.PAUSED, SessionStatus.FAILED),
            pause_requested_at=None,
        )
    for control in MigrationControl.objects.filter(session_id=session_id).exclude(
        state__in=(EntityState.COMPLETED, EntityState.CANCELLED, EntityState.PENDING)
    ):
        transition_entity(
            control_id=control.pk, to=EntityState.PENDING, expected=control.state, lease_owner=""
        )
    # The partitions' leases of a dead executor go too (services.partitions).
    MigrationCheckpoint.objects.filter(migration_run__session_id=session_id).exclude(
        lease_owner=""
    ).update(lease_owner="", lease_heartbeat=None)
    MigrationStatus.objects.filter(migration_session_id=session_id).update(error_summary={})
    refresh_entity_lists(session_id=session_id)
    _log_request(
        session_id,
        AuditAction.SESSION_RESUMED,
        "session resumed",
        user,
        then=": continuing from the last checkpoints",
        operation=OperationType.CHECKPOINT_RESTORE,
    )
    return session


def _log_request(
    session_id: uuid.UUID,
    action: AuditAction,
    what: str,
    user: str,
    *,
    then: str = "",
    operation: str = OperationType.CHECKPOINT_SAVE,
) -> None:
    """An operator's request in the session's log: ``<what> by <user>``, the user (the CLI
    when none is given) as its actor."""
    actor = user or CLI_ACTOR
    log_event(
        session_id=session_id,
        operation=operation,
        action=action,
        actor=actor,
        message=f"{what} by {actor}{then}",
    )
