"""Dispatch: which units of a session are ready, and their RQ jobs (with ``REDIS_URL``).

The dependency graph lives in the control database, not in Redis (which may lose
everything on a restart): ``dispatch`` reads the session's entity runs and enqueues the
**units** that are ready and that nobody holds:

* an entity's upsert unit (its analysis, then its upserts; phase analyze/upsert/link) once
  the upserts of every entity it depends on are done;
* for a large entity split into partitions after its analysis (services.partitions), each
  partition that nobody holds is a unit of its own (phase ``upsert:<i>``) while the entity
  runs; once all are done, its upsert unit again (the ``reference: self`` second pass);
* its delete unit (phase delete) once every upsert of the session is settled and the
  entities that depend on it have finished their deletes (reverse dependency order).

A job runs one slice of a unit (``services.units.execute_unit``): at most
``DIFFMIG_UNIT_BATCHES`` batches, then it dispatches again — the continuation, the next
entities, or the session's end. No job runs for long, and a lost job loses at most one
slice: the checkpoints hold the rest.

A job's id names its unit and where it starts — ``diffmig-<control>-<phase>-<checkpoint
position>-<attempt>`` — and is enqueued only when no live copy of it is queued
(``queue.port.enqueue_once``): the same slice is not queued twice by two dispatchers.
Should a copy run twice anyway (Redis replayed, a worker presumed dead), the lease
(compare-and-set, checked again in every checkpoint transaction) stops the second copy
before it writes.

``dispatch`` is called when a session starts (``submit``), at the end of every unit,
by ``resume`` and by the watchdog.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from migrationsapp.engine.errors import StateTransitionError
from migrationsapp.engine.outcomes import Phase
from migrationsapp.models import MigrationCheckpoint, MigrationControl, MigrationStatus
from migrationsapp.models.choices import (
    AuditAction,
    CheckpointState,
    EntityState,
    LogLevel,
    OperationType,
    SessionStatus,
)
from migrationsapp.queue.port import QueueUnavailableError, enqueue_once
from migrationsapp.selectors.workers import runs_in_workers as runs_in_workers  # re-exported
from migrationsapp.services import leases, partitions, runs
from migrationsapp.services.logs import log_event
from migrationsapp.services.state import (
    FINISHED_ENTITY,
    refresh_entity_lists,
    transition_entity,
    transition_session,
)

logger = logging.getLogger("diffmig.dispatch")

JOB = "migrationsapp.jobs.run_unit"
EXECUTOR = "rq"  # session.options["executor"]: the watchdog looks after these sessions
DELETE_PHASES = (Phase.DELETE, Phase.DONE)
DEAD = (EntityState.FAILED, EntityState.BLOCKED, EntityState.CANCELLED)
# The analysis of an entity runs in its first unit and writes no checkpoint: it may take
# much longer than a slice of batches (its lease is kept alive by the heartbeat).
ANALYSIS_TIMEOUT_FACTOR = 6
FAILURE_TTL = 7 * 24 * 3600
UNAVAILABLE_HINT = "The watchdog dispatches the session's units again once Redis is back."


def on_workers(session: MigrationStatus) -> bool:
    """Whether the workers execute the session (not a thread or a CLI process)."""
    return (session.options or {}).get("executor") == EXECUTOR


def unit_phase(control_phase: str) -> Phase:
    """The unit an entity run is at: ``upsert`` (with its analysis) or ``delete``."""
    return Phase.DELETE if control_phase in DELETE_PHASES else Phase.UPSERT


@dataclass(frozen=True)
class Unit:
    session_id: uuid.UUID
    control_id: uuid.UUID
    entity: str
    phase: str  # upsert | delete | upsert:<i> (a partition)
    position: int  # the unit's checkpoint (last change id done) when it was dispatched
    attempt: int
    analysis: bool = False

    @classmethod
    def of(
        cls, control: MigrationControl, *, phase: str, position: int, analysis: bool = False
    ) -> Unit:
        """A unit of ``control``'s entity run, at its current attempt."""
        return cls(
            session_id=control.session_id,
            control_id=control.pk,
            entity=control.entity_type,
            phase=phase,
            position=position,
            attempt=control.attempts,
            analysis=analysis,
        )

    @property
    def job_id(self) -> str:
        phase = self.phase.replace(":", "_")
        return f"diffmig-{self.control_id.hex}-{phase}-{self.position}-{self.attempt}"

    @property
    def timeout(self) -> int:
        factor = ANALYSIS_TIMEOUT_FACTOR if self.analysis else 1
        return settings.DIFFMIG_JOB_TIMEOUT * factor


@dataclass
class Plan:
    ready: list[MigrationControl]
    blocked: list[MigrationControl]
    leased: bool
    finished: bool


def plan_session(controls: list[MigrationControl]) -> Plan:
    """Which entity runs are ready for a unit, which must be blocked (a parent failed)."""
    by_name = {c.entity_type: c for c in controls}
    upserts_settled = all(c.phase in DELETE_PHASES or c.state in FINISHED_ENTITY for c in controls)
    ready, blocked = [], []
    for control in controls:
        if control.state in FINISHED_ENTITY or control.lease_owner:
            continue
        parents = [by_name[name] for name in control.depends_on if name in by_name]
        if control.phase not in DELETE_PHASES:
            # Checked before an entity starts, as the in-process executor does.
            if control.state == EntityState.PENDING and any(p.state in DEAD for p in parents):
                blocked.append(control)
            elif all(parent.phase in DELETE_PHASES for parent in parents):
                ready.append(control)
            continue
        dependants = [c for c in controls if control.entity_type in c.depends_on]
        if upserts_settled and all(d.state in FINISHED_ENTITY for d in dependants):
            ready.append(control)
    return Plan(
        ready=ready,
        blocked=blocked,
        leased=any(c.lease_owner for c in controls),
        finished=all(c.state in FINISHED_ENTITY for c in controls),
    )


def _positions(controls: list[MigrationControl]) -> dict[tuple[uuid.UUID, str], int]:
    rows = MigrationCheckpoint.objects.filter(
        migration_run_id__in=[c.run_id for c in controls]
    ).values_list("migration_run_id", "unit", "batch_position")
    return {(run_id, unit): position for run_id, unit, position in rows}


def _partitions(controls: list[MigrationControl]) -> dict[uuid.UUID, list[MigrationCheckpoint]]:
    """The partitions still to do of these entity runs, by run id."""
    found: dict[uuid.UUID, list[MigrationCheckpoint]] = {}
    for partition in partitions.of_run_ids([c.run_id for c in controls]).exclude(
        state=CheckpointState.COMPLETED
    ):
        found.setdefault(partition.migration_run_id, []).append(partition)
    return found


def _units(
    control: MigrationControl,
    positions: dict[tuple[uuid.UUID, str], int],
    pending: dict[uuid.UUID, list[MigrationCheckpoint]],
) -> list[Unit]:
    phase = unit_phase(control.phase)
    parts = pending.get(control.run_id, []) if phase != Phase.DELETE else []
    if parts and control.state == EntityState.RUNNING:
        # A split entity: every partition nobody holds (the entity's own unit waits for all).
        return [
            Unit.of(control, phase=part.unit, position=part.batch_position)
            for part in parts
            if not part.lease_owner
        ]
    return [
        Unit.of(
            control,
            phase=phase,
            position=positions.get((control.run_id, phase), 0),
            analysis=control.phase == Phase.ANALYZE,
        )
    ]


# -- dispatch ----------------------------------------------------------------------------------


def submit(*, session_id: uuid.UUID) -> None:
    """Start a launched or resumed session on the workers once the caller's transaction commits.

    A web request must not fail after its session was created: should Redis be down, the
    session stays running and the watchdog dispatches it once Redis is back (the CLI calls
    ``start_session`` itself, to say so with exit code 4).
    """

    def start() -> None:
        try:
            start_session(session_id=session_id)
        except QueueUnavailableError as error:
            logger.error("session %s: %s", session_id, error)
            log_event(
                session_id=session_id,
                operation=OperationType.CHECKPOINT_SAVE,
                action=AuditAction.SESSION_DISPATCH_FAILED,
                level=LogLevel.ERROR,
                message=f"{error}; {error.hint}",
            )

    transaction.on_commit(start)


def start_session(*, session_id: uuid.UUID) -> list[str]:
    """pending → running, mark the session as the workers', then dispatch its first units."""
    session = MigrationStatus.objects.get(migration_session_id=session_id)
    if session.overall_status == SessionStatus.PENDING:
        try:
            session = transition_session(
                session_id=session_id, to=SessionStatus.RUNNING, expected=SessionStatus.PENDING
            )
        except StateTransitionError:
            session.refresh_from_db()
    if not on_workers(session):
        MigrationStatus.objects.filter(migration_session_id=session_id).update(
            options={**(session.options or {}), "executor": EXECUTOR}
        )
    # A start or a resume grants every unfinished entity its attempts again.
    MigrationControl.objects.filter(session_id=session_id, lease_owner="").exclude(
        state__in=FINISHED_ENTITY
    ).update(attempts=0)
    return dispatch(session_id=session_id)


def dispatch(*, session_id: uuid.UUID) -> list[str]:
    """Enqueue the session's ready units; block what cannot run; end a session that is done
    (or asked to stop) once none of its units holds a lease. Returns the enqueued job ids.

    Inside a transaction it waits for the commit (a job must see what the caller wrote) and
    returns nothing.
    """
    if connection.in_atomic_block:
        transaction.on_commit(lambda: dispatch(session_id=session_id))
        return []
    session = MigrationStatus.objects.filter(migration_session_id=session_id).first()
    if session is None or session.overall_status != SessionStatus.RUNNING:
        return []
    while True:
        controls = list(MigrationControl.objects.filter(session_id=session_id).order_by("position"))
        plan = plan_session(controls)
        # A blocked entity blocks its own dependants in the next round.
        changed = [
            transition_entity(
                control_id=control.pk,
                to=EntityState.BLOCKED,
                expected=EntityState.PENDING,
                message="a parent entity did not complete",
            )
            for control in plan.blocked
        ]
        if not any(changed):
            break
        refresh_entity_lists(session_id=session_id)
    stop = (
        runs.UnitResult.CANCELLED
        if session.cancel_requested_at
        else runs.UnitResult.PAUSED
        if session.pause_requested_at
        else None
    )
    pending = _partitions(controls)
    leased = plan.leased or any(p.lease_owner for parts in pending.values() for p in parts)
    if plan.finished or stop:
        if not leased:
            # Of two dispatchers seeing the end, one ends the session; the other is refused.
            with contextlib.suppress(StateTransitionError):
                runs.finish_session(session_id=session_id, stopped=None if plan.finished else stop)
        return []
    positions = _positions(plan.ready)
    units = [unit for control in plan.ready for unit in _units(control, positions, pending)]
    return [unit.job_id for unit in units if enqueue_unit(unit)]


def enqueue_unit(unit: Unit) -> bool:
    """Enqueue one unit's job unless a live copy of it is queued; True when enqueued.

    A copy a worker started before the lease horizon is not live: the unit has no lease,
    so that worker died with it.
    """
    return enqueue_once(
        JOB,
        job_id=unit.job_id,
        kwargs={
            "session_id": str(unit.session_id),
            "control_id": str(unit.control_id),
            "phase": unit.phase,
            "position": unit.position,
        },
        timeout=unit.timeout,
        failure_ttl=FAILURE_TTL,
        description=f"diffmig {unit.entity} {unit.phase} after change "
        f"{unit.position} (session {unit.session_id})",
        started_after=leases.lease_horizon(),
        unavailable_hint=UNAVAILABLE_HINT,
    )
