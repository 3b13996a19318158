"""The session state machine: the one place a session or an entity run changes state.

Every change is a compare-and-set (``filter(pk=…, state=<what I read>).update(…)``): of two
concurrent transitions of one session exactly one wins, and the loser gets a
``StateTransitionError`` saying what the state became. Nothing else writes these columns.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from migrationsapp.engine.errors import StateTransitionError
from migrationsapp.models import MigrationControl, MigrationStatus
from migrationsapp.models.choices import EntityState, SessionStatus

SESSION_TRANSITIONS: dict[str, frozenset[str]] = {
    SessionStatus.PENDING: frozenset(
        {SessionStatus.RUNNING, SessionStatus.CANCELLED, SessionStatus.FAILED}
    ),
    SessionStatus.RUNNING: frozenset(
        {
            SessionStatus.PAUSED,
            SessionStatus.COMPLETED,
            SessionStatus.FAILED,
            SessionStatus.CANCELLED,
        }
    ),
    SessionStatus.PAUSED: frozenset(
        {SessionStatus.RUNNING, SessionStatus.CANCELLED, SessionStatus.FAILED}
    ),
    # A failed session may be resumed from its checkpoints.
    SessionStatus.FAILED: frozenset({SessionStatus.RUNNING}),
    SessionStatus.COMPLETED: frozenset(),
    SessionStatus.CANCELLED: frozenset(),
}

ENTITY_TRANSITIONS: dict[str, frozenset[str]] = {
    EntityState.PENDING: frozenset(
        {
            EntityState.RUNNING,
            EntityState.CANCELLED,
            EntityState.FAILED,
            EntityState.BLOCKED,
            EntityState.PAUSED,
        }
    ),
    EntityState.RUNNING: frozenset(
        {
            EntityState.PAUSED,
            EntityState.COMPLETED,
            EntityState.FAILED,
            EntityState.CANCELLED,
            EntityState.PENDING,
        }
    ),
    EntityState.PAUSED: frozenset(
        {EntityState.RUNNING, EntityState.PENDING, EntityState.CANCELLED, EntityState.FAILED}
    ),
    EntityState.FAILED: frozenset({EntityState.PENDING}),
    EntityState.BLOCKED: frozenset({EntityState.PENDING, EntityState.CANCELLED}),
    EntityState.COMPLETED: frozenset(),
    EntityState.CANCELLED: frozenset(),
}

FINISHED_SESSION = frozenset(
    {SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.CANCELLED}
)
FINISHED_ENTITY = frozenset(
    {EntityState.COMPLETED, EntityState.FAILED, EntityState.CANCELLED, EntityState.BLOCKED}
)


def can_transition_session(current: str, target: str) -> bool:
    return target in SESSION_TRANSITIONS.get(current, frozenset())


def transition_session(
    *,
    session_id: uuid.UUID,
    to: str,
    expected: str | Iterable[str] | None = None,
    **fields: object,
) -> MigrationStatus:
    """Move a session to ``to`` by compare-and-set; returns the updated session.

    ``expected`` restricts the states the caller accepts to move from (e.g. resume only
    from ``paused`` or ``failed``). ``fields`` are written in the same update.
    """
    session = MigrationStatus.objects.get(migration_session_id=session_id)
    current = session.overall_status
    accepted = {expected} if isinstance(expected, str) else set(expected or SESSION_TRANSITIONS)
    if current not in accepted or not can_transition_session(current, to):
        raise StateTransitionError(
            f"session {session_id} is {current}: it cannot become {to}",
            hint=_allowed_hint(current),
        )
    now = timezone.now()
    updates: dict[str, object] = {"overall_status": to, "updated_at": now, **fields}
    if to == SessionStatus.RUNNING and session.started_at is None:
        updates.setdefault("started_at", now)
    if to in FINISHED_SESSION:
        updates.setdefault("completed_at", now)
    if to == SessionStatus.RUNNING:
        # A resumed session is no longer finished, nor asked to stop.
        updates.setdefault("completed_at", None)
        updates.setdefault("pause_requested_at", None)
    changed = MigrationStatus.objects.filter(
        migration_session_id=session_id, overall_status=current
    ).update(**updates)
    if changed != 1:
        now_status = (
            MigrationStatus.objects.filter(migration_session_id=session_id)
            .values_list("overall_status", flat=True)
            .first()
        )
        raise StateTransitionError(
            f"session {session_id} changed to {now_status} while it was becoming {to}",
            hint="Look at the session again and retry if it still makes sense.",
        )
    session.refresh_from_db()
    return session


def transition_entity(
    *,
    control_id: uuid.UUID,
    to: str,
    expected: str | Iterable[str] | None = None,
    **fields: object,
) -> bool:
    """Move one entity run to ``to`` by compare-and-set; False when it was not in ``expected``.

    Unlike sessions, a lost race here is normal (two workers, a watchdog), so it returns
    False instead of raising; an impossible transition still raises.
    """
    if expected is None:
        sources = [state for state, targets in ENTITY_TRANSITIONS.items() if to in targets]
    else:
        sources = [expected] if isinstance(expected, str) else list(expected)
        for source in sources:
            if to not in ENTITY_TRANSITIONS.get(source, frozenset()):
                raise StateTransitionError(f"an entity run cannot go from {source} to {to}")
    now = timezone.now()
    updates: dict[str, object] = {"state": to, "updated_at": now, **fields}
    if to == EntityState.RUNNING:
        updates.setdefault("started_at", now)
    if to in FINISHED_ENTITY:
        updates.setdefault("finished_at", now)
        updates.setdefault("lease_owner", "")
        updates.setdefault("lease_heartbeat", None)
    changed = MigrationControl.objects.filter(pk=control_id, state__in=sources).update(**updates)
    return changed == 1


def refresh_entity_lists(*, session_id: uuid.UUID) -> None:
    """Derive the session's disjoint ``entities_*`` lists from its control rows."""
    lists: dict[str, list[str]] = {"pending": [], "running": [], "completed": [], "failed": []}
    bucket = {
        EntityState.PENDING: "pending",
        EntityState.PAUSED: "pending",
        EntityState.RUNNING: "running",
        EntityState.COMPLETED: "completed",
        EntityState.FAILED: "failed",
        EntityState.BLOCKED: "failed",
        EntityState.CANCELLED: "failed",
    }
    rows = MigrationControl.objects.filter(session_id=session_id).order_by("position")
    for entity, state in rows.values_list("entity_type", "state"):
        lists[bucket[state]].append(entity)
    with transaction.atomic():
        MigrationStatus.objects.filter(migration_session_id=session_id).update(
            entities_pending=lists["pending"],
            entities_running=lists["running"],
            entities_completed=lists["completed"],
            entities_failed=lists["failed"],
            updated_at=timezone.now(),
        )


def _allowed_hint(current: str) -> str:
    targets = sorted(SESSION_TRANSITIONS.get(current, frozenset()))
    if not targets:
        return f"A {current} session is final; launch a new run instead."
    return f"From {current} a session can become: {', '.join(targets)}."
