"""One unit of a session, as an RQ job runs it (``jobs.run_unit``).

The job takes its unit's lease (``services.leases``), keeps it alive from a heartbeat
thread, runs at most ``DIFFMIG_UNIT_BATCHES`` batches through the same steps as the
in-process executor (``services.runs.run_entity_step``), gives the lease back and
dispatches again (``services.dispatch``). Before anything it checks that the session still
runs and that its slice was not run already by another copy (the checkpoint moved).

A partition of a large entity's upserts (``phase`` ``upsert:<i>``, services.partitions) is a
unit of its own: it takes the partition's lease instead of the entity's, while the entity
stays ``running``. The two kinds differ only in what they hold and which step they run
(``_Leased``); the rest of a unit is one function.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections
from django.db.models import F, Model

from migrationsapp.engine.errors import TransientError
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
from migrationsapp.services import leases, partitions, runs
from migrationsapp.services.dispatch import dispatch, unit_phase
from migrationsapp.services.logs import log_event
from migrationsapp.services.run_ports import checkpoint_position
from migrationsapp.services.runs import RunContext, UnitResult
from migrationsapp.services.state import FINISHED_ENTITY

logger = logging.getLogger("diffmig.units")

# A unit that ended so dispatches the session again (its continuation, the next units, or
# the session's end); a lost lease or an error leaves that to the holder or the watchdog.
NOT_DISPATCHED = (UnitResult.LOST, UnitResult.ERROR)


def execute_unit(
    *, session_id: uuid.UUID, control_id: uuid.UUID, phase: str, position: int
) -> UnitResult:
    """Run one slice of a unit (the body of ``jobs.run_unit``); says how it ended:

    ``slice``/``done`` (dispatched again), ``paused``/``cancelled``, ``stopped`` (asked to
    before it began), ``idle`` (the session or the entity is no longer running), ``stale``
    (another copy already ran this slice), ``busy`` (another copy holds the lease), ``lost``
    (the lease was taken away meanwhile), ``error`` (left for the watchdog to retry) or
    ``failed`` (out of attempts).
    """
    close_old_connections()
    how = _run_unit(session_id=session_id, control_id=control_id, phase=phase, position=position)
    if how not in (UnitResult.SLICE, UnitResult.DONE):
        logger.info("unit %s %s after change %s: %s", control_id, phase, position, how)
    return how


@dataclass(frozen=True)
class _Leased:
    """What a unit holds a lease on and the step it runs under it."""

    row_id: uuid.UUID  # the entity run's control row, or the partition's checkpoint row
    model: type[Model]
    acquire: Callable[[str], bool]  # take the lease for an owner token
    step: Callable[[RunContext], UnitResult | None]


def _entity_unit(control: MigrationControl, phase: str, position: int) -> _Leased | UnitResult:
    if unit_phase(control.phase) != phase or checkpoint_position(control, phase) != position:
        return UnitResult.STALE

    def step(ctx: RunContext) -> UnitResult | None:
        control.refresh_from_db()
        return runs.run_entity_step(ctx, control)

    return _Leased(
        row_id=control.pk,
        model=MigrationControl,
        acquire=lambda owner: leases.acquire(control_id=control.pk, owner=owner),
        step=step,
    )


def _partition_unit(control: MigrationControl, unit: str, position: int) -> _Leased | UnitResult:
    if control.state != EntityState.RUNNING:
        return UnitResult.IDLE
    partition = partitions.of_run(control.run_id).filter(unit=unit).first()
    if (
        unit_phase(control.phase) != Phase.UPSERT
        or partition is None
        or partition.state == CheckpointState.COMPLETED
        or partition.batch_position != position
    ):
        return UnitResult.STALE

    def step(ctx: RunContext) -> UnitResult | None:
        control.refresh_from_db()
        partition.refresh_from_db()
        return runs.run_partition_step(ctx, control, partition)

    return _Leased(
        row_id=partition.pk,
        model=MigrationCheckpoint,
        acquire=lambda owner: leases.acquire_partition(checkpoint_id=partition.pk, owner=owner),
        step=step,
    )


def _run_unit(
    *, session_id: uuid.UUID, control_id: uuid.UUID, phase: str, position: int
) -> UnitResult:
    session = MigrationStatus.objects.filter(migration_session_id=session_id).first()
    control = MigrationControl.objects.filter(pk=control_id).first()
    if session is None or control is None or session.overall_status != SessionStatus.RUNNING:
        return UnitResult.IDLE
    if control.state in FINISHED_ENTITY:
        return UnitResult.IDLE
    if partitions.is_partition(phase):
        leased = _partition_unit(control, phase, position)
    else:
        leased = _entity_unit(control, phase, position)
    if isinstance(leased, UnitResult):
        return leased
    if session.pause_requested_at or session.cancel_requested_at:
        dispatch(session_id=session_id)  # the session stops once no unit holds a lease
        return UnitResult.STOPPED
    owner = leases.new_owner()
    if not leased.acquire(owner):
        return UnitResult.BUSY
    try:
        with (
            leases.heartbeat(holder_id=leased.row_id, owner=owner, model=leased.model),
            runs.session_context(
                session_id=session_id, owner=owner, max_batches=settings.DIFFMIG_UNIT_BATCHES
            ) as ctx,
        ):
            how = leased.step(ctx) or UnitResult.DONE
    except Exception as error:  # a database unreachable or lost: count, retry later
        how = _unit_failed(control, error)
    finally:
        leases.release(holder_id=leased.row_id, owner=owner, model=leased.model)
    if how not in NOT_DISPATCHED:
        dispatch(session_id=session_id)
    return how


def _unit_failed(control: MigrationControl, error: Exception) -> UnitResult:
    # A lost control connection leaves Django's connection unusable: open a fresh one.
    close_old_connections()
    MigrationControl.objects.filter(pk=control.pk).update(attempts=F("attempts") + 1)
    control.refresh_from_db()
    limit = settings.DIFFMIG_MAX_ATTEMPTS
    entity = control.entity_type
    if control.attempts >= limit:
        runs.fail_entity(
            control=control,
            error=TransientError(
                f"{entity}: its unit failed {control.attempts} times; the last time: {error}",
                hint="Fix the cause, then `diffmig resume` continues from the last checkpoint.",
            ),
        )
        return UnitResult.FAILED
    log_event(
        session_id=control.session_id,
        entity=entity,
        operation=OperationType.RECORD_MIGRATION,
        action=AuditAction.UNIT_FAILED,
        level=LogLevel.ERROR,
        message=f"{entity}: the unit stopped at its last checkpoint ({type(error).__name__}: "
        f"{error}); the watchdog tries again (attempt {control.attempts} of {limit})",
        error_details={"error": type(error).__name__, "traceback": traceback.format_exc()},
    )
    return UnitResult.ERROR
