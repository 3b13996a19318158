"""One unit of a session, as an RQ job runs it (``jobs.run_unit``).

The job takes its entity's lease (``services.leases``), keeps it alive from a heartbeat
thread, runs at most ``DIFFMIG_UNIT_BATCHES`` batches through the same steps as the
in-process executor (``services.runs.run_entity_step``), gives the lease back and
dispatches again (``services.dispatch``). Before anything it checks that the session still
runs and that its slice was not run already by another copy (the checkpoint moved).

A partition of a large entity's upserts (``phase`` ``upsert:<i>``, services.partitions) is a
unit of its own: it takes the partition's lease instead of the entity's, while the entity
stays ``running``.
"""

from __future__ import annotations

import logging
import traceback
import uuid

from django.conf import settings
from django.db import close_old_connections
from django.db.models import F

from migrationsapp.engine.errors import TransientError
from migrationsapp.engine.runner import UPSERT
from migrationsapp.models import MigrationCheckpoint, MigrationControl, MigrationStatus
from migrationsapp.models.choices import (
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
from migrationsapp.services.state import FINISHED_ENTITY

logger = logging.getLogger("diffmig.units")


def execute_unit(*, session_id: uuid.UUID, control_id: uuid.UUID, phase: str, position: int) -> str:
    """Run one slice of a unit (the body of ``jobs.run_unit``); says how it ended:

    ``slice``/``done`` (dispatched again), ``paused``/``cancelled``, ``stopped`` (asked to
    before it began), ``idle`` (the session or the entity is no longer running), ``stale``
    (another copy already ran this slice), ``busy`` (another copy holds the lease), ``lost``
    (the lease was taken away meanwhile), ``error`` (left for the watchdog to retry) or
    ``failed`` (out of attempts).
    """
    close_old_connections()
    how = _run_unit(session_id=session_id, control_id=control_id, phase=phase, position=position)
    if how not in ("slice", "done"):
        logger.info("unit %s %s after change %s: %s", control_id, phase, position, how)
    return how


def _run_unit(*, session_id: uuid.UUID, control_id: uuid.UUID, phase: str, position: int) -> str:
    session = MigrationStatus.objects.filter(migration_session_id=session_id).first()
    control = MigrationControl.objects.filter(pk=control_id).first()
    if session is None or control is None or session.overall_status != SessionStatus.RUNNING:
        return "idle"
    if control.state in FINISHED_ENTITY:
        return "idle"
    if partitions.is_partition(phase):
        return _run_partition(session, control, phase, position)
    if unit_phase(control.phase) != phase or checkpoint_position(control, phase) != position:
        return "stale"
    if session.pause_requested_at or session.cancel_requested_at:
        dispatch(session_id=session_id)  # the session stops once no unit holds a lease
        return "stopped"
    owner = leases.new_owner()
    if not leases.acquire(control_id=control_id, owner=owner):
        return "busy"
    try:
        with (
            leases.heartbeat(control_id=control_id, owner=owner),
            runs.session_context(
                session_id=session_id, owner=owner, max_batches=settings.DIFFMIG_UNIT_BATCHES
            ) as ctx,
        ):
            control.refresh_from_db()
            how = runs.run_entity_step(ctx, control) or "done"
    except Exception as error:  # a database unreachable or lost: count, retry later
        how = _unit_failed(control, error)
    finally:
        leases.release(control_id=control_id, owner=owner)
    if how not in ("lost", "error"):
        dispatch(session_id=session_id)
    return how


def _run_partition(
    session: MigrationStatus, control: MigrationControl, unit: str, position: int
) -> str:
    session_id = session.migration_session_id
    if control.state != EntityState.RUNNING:
        return "idle"
    partition = partitions.of_run(control.run_id).filter(unit=unit).first()
    if (
        unit_phase(control.phase) != UPSERT
        or partition is None
        or partition.state == CheckpointState.COMPLETED
        or partition.batch_position != position
    ):
        return "stale"
    if session.pause_requested_at or session.cancel_requested_at:
        dispatch(session_id=session_id)
        return "stopped"
    owner = leases.new_owner()
    if not leases.acquire_partition(checkpoint_id=partition.pk, owner=owner):
        return "busy"
    try:
        with (
            leases.heartbeat(control_id=partition.pk, owner=owner, model=MigrationCheckpoint),
            runs.session_context(
                session_id=session_id, owner=owner, max_batches=settings.DIFFMIG_UNIT_BATCHES
            ) as ctx,
        ):
            control.refresh_from_db()
            partition.refresh_from_db()
            how = runs.run_partition_step(ctx, control, partition) or "done"
    except Exception as error:  # a database unreachable or lost: count, retry later
        how = _unit_failed(control, error)
    finally:
        leases.release(control_id=partition.pk, owner=owner, model=MigrationCheckpoint)
    if how not in ("lost", "error"):
        dispatch(session_id=session_id)
    return how


def _unit_failed(control: MigrationControl, error: Exception) -> str:
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
        return "failed"
    log_event(
        session_id=control.session_id,
        entity=entity,
        operation=OperationType.RECORD_MIGRATION,
        level=LogLevel.ERROR,
        message=f"{entity}: the unit stopped at its last checkpoint ({type(error).__name__}: "
        f"{error}); the watchdog tries again (attempt {control.attempts} of {limit})",
        error_details={"error": type(error).__name__, "traceback": traceback.format_exc()},
    )
    return "error"
