"""Executing a session in this process: every entity in dependency order, until the session
completes, fails, pauses or is cancelled (the embedded default's executor, the CLI's and the
demo's without workers).

Upserts go parents first (analysis, then batches); once every entity's upserts are done,
deletes go children first. Each entity runs under a lease like a unit on the workers, so a
second executor of the same session stops at its next checkpoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

from django.db import connection

from migrationsapp.engine.errors import StateTransitionError
from migrationsapp.engine.outcomes import Phase
from migrationsapp.engine.ports import FaultHook
from migrationsapp.engine.runner import EntityRunner
from migrationsapp.models import MigrationControl, MigrationStatus
from migrationsapp.models.choices import EntityState, SessionStatus
from migrationsapp.services import leases
from migrationsapp.services.run_connections import ConnectionOpenError
from migrationsapp.services.runs import read_ahead
from migrationsapp.services.runs.context import RunContext, RunObserver, session_context
from migrationsapp.services.runs.entity_steps import run_entity_deletes, run_entity_upserts
from migrationsapp.services.runs.failures import fail_unopened
from migrationsapp.services.runs.finish import finish_by_entities, finish_session
from migrationsapp.services.runs.launch import RunOptions, launch_session
from migrationsapp.services.state import FINISHED_ENTITY, transition_entity, transition_session


def execute_session(
    *,
    session_id: uuid.UUID,
    fault: FaultHook | None = None,
    observer: RunObserver | None = None,
) -> MigrationStatus:
    """Run a session in this process until it completes, fails, pauses or is cancelled."""
    session = MigrationStatus.objects.get(migration_session_id=session_id)
    if session.overall_status == SessionStatus.PENDING:
        session = transition_session(
            session_id=session_id, to=SessionStatus.RUNNING, expected=SessionStatus.PENDING
        )
    if session.overall_status != SessionStatus.RUNNING:
        raise StateTransitionError(
            f"session {session_id} is {session.overall_status}: it cannot run"
        )
    try:
        with session_context(session_id=session_id, fault=fault, observer=observer) as context:
            return _execute(context)
    except ConnectionOpenError as error:
        return fail_unopened(session_id=session_id, error=error)


def run_session(
    *,
    entities: Sequence[str] | None = None,
    options: RunOptions | None = None,
    user: str = "",
    fault: FaultHook | None = None,
) -> MigrationStatus:
    """Launch and execute in this process, whatever the settings say (tests, benchmarks)."""
    session = launch_session(entities=entities, options=options, user=user)
    return execute_session(session_id=session.migration_session_id, fault=fault)


def _controls(session_id: uuid.UUID) -> list[MigrationControl]:
    return list(MigrationControl.objects.filter(session_id=session_id).order_by("position"))


def _execute(ctx: RunContext) -> MigrationStatus:
    # The sources of the entities to come read on the other core (read_ahead.py).
    helper = read_ahead.start(ctx)
    try:
        return _execute_entities(ctx)
    finally:
        read_ahead.stop(helper)


def _execute_entities(ctx: RunContext) -> MigrationStatus:
    session_id = ctx.session.migration_session_id
    runners: dict[str, EntityRunner] = {}
    for control in _controls(session_id):
        if control.state in FINISHED_ENTITY or control.phase in (Phase.DELETE, Phase.DONE):
            continue
        if _blocked_by(control):
            transition_entity(
                control_id=control.pk,
                to=EntityState.BLOCKED,
                message="a parent entity did not complete",
            )
            continue
        with _heartbeat(ctx, control):
            stopped = run_entity_upserts(ctx, control, runners)
        if stopped:
            return finish_session(session_id=session_id, stopped=stopped)
    for control in reversed(_controls(session_id)):
        if control.state in FINISHED_ENTITY or control.phase != Phase.DELETE:
            continue
        with _heartbeat(ctx, control):
            stopped = run_entity_deletes(ctx, control, runners)
        if stopped:
            return finish_session(session_id=session_id, stopped=stopped)
    return finish_by_entities(session_id)


def _heartbeat(ctx: RunContext, control: MigrationControl) -> AbstractContextManager:
    """Keep the entity's lease fresh from a thread while this process works on it, so a
    long analysis does not look like a dead executor. On PostgreSQL only: SQLite (the
    embedded default, one process) would make the two threads contend for its lock."""
    if connection.vendor != "postgresql":
        return nullcontext()
    return leases.heartbeat(holder_id=control.pk, owner=ctx.owner)


def _blocked_by(control: MigrationControl) -> bool:
    if not control.depends_on:
        return False
    return MigrationControl.objects.filter(
        session_id=control.session_id,
        entity_type__in=control.depends_on,
        state__in=(EntityState.FAILED, EntityState.BLOCKED, EntityState.CANCELLED),
    ).exists()
