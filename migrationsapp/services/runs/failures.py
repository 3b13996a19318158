"""An entity that fails: its state, its reason in the session's error summary, its log entry.

Two units of one session may fail at the same moment (two workers, or a worker and the
watchdog): the error summary is read and written under a lock on the session's row, so the
second waits for the first and adds to what it wrote instead of overwriting it.
"""

from __future__ import annotations

import traceback
import uuid

from django.db import InterfaceError, OperationalError, transaction

from migrationsapp.engine.errors import DiffmigError, TransientError
from migrationsapp.models import MigrationControl, MigrationStatus
from migrationsapp.models.choices import AuditAction, EntityState, LogLevel, OperationType
from migrationsapp.services.logs import log_event
from migrationsapp.services.run_connections import ConnectionOpenError
from migrationsapp.services.runs.context import RunContext
from migrationsapp.services.runs.finish import finish_by_entities
from migrationsapp.services.state import FINISHED_ENTITY, transition_entity


def fail_entity(*, control: MigrationControl, error: DiffmigError, refused: bool = False) -> None:
    """Fail one entity with its reason (in the session's error summary and the log).

    ``refused``: the entity was refused before anything was written to it (the delete
    guard, deletes beyond those confirmed, a source read that ended early).
    """
    message = ("refused: " if refused else "") + str(error)
    transition_entity(control_id=control.pk, to=EntityState.FAILED, message=message)
    _add_to_error_summary(
        session_id=control.session_id, entity=control.entity_type, message=message, refused=refused
    )
    log_event(
        session_id=control.session_id,
        entity=control.entity_type,
        operation=OperationType.DIFFERENTIAL_DETECTION
        if refused
        else OperationType.RECORD_MIGRATION,
        action=AuditAction.ENTITY_DELETES_REFUSED if refused else AuditAction.ENTITY_FAILED,
        level=LogLevel.ERROR,
        message=f"{control.entity_type}: {message}" + (f" — {error.hint}" if error.hint else ""),
        error_details={
            "error": type(error).__name__,
            "traceback": getattr(error, "traceback", None),
        },
    )


def _add_to_error_summary(
    *, session_id: uuid.UUID, entity: str, message: str, refused: bool
) -> None:
    # SELECT … FOR UPDATE: a concurrent failure of another entity waits here until this
    # transaction commits, then reads the summary with this entity in it (on SQLite, where
    # the lock is a no-op, one process executes a session and writes one at a time).
    with transaction.atomic():
        summary = dict(
            MigrationStatus.objects.select_for_update()
            .filter(migration_session_id=session_id)
            .values_list("error_summary", flat=True)
            .get()
            or {}
        )
        summary["entities"] = {**summary.get("entities", {}), entity: message}
        if refused:
            summary["refused"] = [*summary.get("refused", []), entity]
        MigrationStatus.objects.filter(migration_session_id=session_id).update(
            error_summary=summary
        )


def fail_unopened(*, session_id: uuid.UUID, error: ConnectionOpenError) -> MigrationStatus:
    """A running session whose connections cannot be opened: every entity still to run
    fails with the reason (resumable), and the session ends ``failed`` — never left
    ``running`` for a run that cannot do anything."""
    for control in MigrationControl.objects.filter(session_id=session_id).order_by("position"):
        if control.state not in FINISHED_ENTITY:
            fail_entity(control=control, error=error)
    return finish_by_entities(session_id)


def unexpected(error: Exception) -> DiffmigError:
    """Wrap an error no one foresaw, keeping its traceback for the log."""
    wrapped = DiffmigError(
        f"unexpected {type(error).__name__}: {error}",
        hint="The entity stopped at its last checkpoint; `diffmig resume` retries it. "
        "The log entry holds the traceback.",
    )
    wrapped.traceback = "".join(traceback.format_exception(error))
    return wrapped


def stop_on_error(ctx: RunContext, control: MigrationControl, error: Exception) -> None:
    """How a step ends on an error. On RQ a transient one (a lost connection, the control
    database's included) is left to the job machinery: the unit stops where its last
    checkpoint is and the watchdog retries it, counting an attempt. Anything else, and every
    error in-process, fails the entity (resumable) with the reason."""
    transient = isinstance(error, TransientError | OperationalError | InterfaceError)
    if transient and not ctx.in_process:
        raise error
    fail_entity(
        control=control, error=error if isinstance(error, DiffmigError) else unexpected(error)
    )
