"""Launching and executing migration sessions: the use-cases behind `diffmig run` and the web.

A session covers the entities asked for and those they depend on. Execution goes entity by
entity in dependency order: analyse (the change set; the delete guard), then upsert in
batches; once every entity's upserts are done, deletes run in reverse dependency order.
Every batch is checkpointed; a paused, cancelled or crashed session resumes from its
checkpoints with the same change sets.
"""

from __future__ import annotations

import datetime as dt
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Protocol

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from migrationsapp.engine.compile import CompiledEntity, compile_entity
from migrationsapp.engine.connectors import Database
from migrationsapp.engine.diff import check_delete_guard
from migrationsapp.engine.errors import (
    DeleteGuardError,
    DiffmigError,
    LeaseLostError,
    StateTransitionError,
    TerminalError,
    TransientError,
)
from migrationsapp.engine.gc_policy import fewer_collections
from migrationsapp.engine.load import TableWriter
from migrationsapp.engine.mapping import EntitySpec, dependency_order
from migrationsapp.engine.ports import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE
from migrationsapp.engine.runner import (
    DELETE,
    UPSERT,
    BatchResult,
    EntityRunner,
    FaultHook,
    UnitOutcome,
)
from migrationsapp.engine.validation import compile_rules
from migrationsapp.models import MigrationCheckpoint, MigrationControl, MigrationStatus
from migrationsapp.models.choices import (
    ACTIVE_ENTITY_STATES,
    EntityState,
    LogLevel,
    OperationType,
    RunMode,
    SessionStatus,
)
from migrationsapp.selectors.counts import EntityCounts
from migrationsapp.selectors.stages import METRICS_KEY as STAGES_METRICS_KEY
from migrationsapp.selectors.stages import metrics_copy, stage_totals_by_entity
from migrationsapp.services import leases, partitions
from migrationsapp.services.alerts import alert_session_finished
from migrationsapp.services.analysis import analyze_into_result
from migrationsapp.services.cursors import announce_cursor, overlap_from_seconds
from migrationsapp.services.logs import log_event
from migrationsapp.services.mappings import ActiveMapping, load_active_mapping
from migrationsapp.services.run_connections import ConnectionOpenError, open_for_run
from migrationsapp.services.run_ports import (
    EntityRunPorts,
    checkpoint_position,
    run_link_phase,
    unlink_for_deletes,
)
from migrationsapp.services.state import (
    FINISHED_ENTITY,
    FINISHED_SESSION,
    refresh_entity_lists,
    transition_entity,
    transition_session,
)

PHASE_ANALYZE = "analyze"
PHASE_DONE = "done"


class LaunchRefusedError(TerminalError):
    """A launch that cannot start: an entity is already running, or unknown."""


@dataclass(frozen=True)
class RunOptions:
    baseline: bool = False
    dry_run: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    max_delete_share: float | None = None
    # Deletes per entity that the operator saw and confirmed before launching (the web's
    # two-step launch); an entity whose analysis finds more is refused. None: no check.
    confirmed_deletes: dict[str, int] | None = None
    # detection: timestamp | hybrid — seconds the window reaches back before the cursor
    # (None: engine.cursor.DEFAULT_OVERLAP, 5 minutes; 0: strictly after the cursor tuple).
    timestamp_overlap_s: float | None = None


# -- launch ------------------------------------------------------------------------------------


def entities_with_dependencies(active: ActiveMapping, entities: Sequence[str] | None) -> list[str]:
    """The entities asked for and those they depend on, in dependency order."""
    specs = {spec.name: spec for spec in active.mapping.entities}
    if not entities:
        return dependency_order(list(specs.values()))
    wanted: set[str] = set()
    pending = list(entities)
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        pending.extend(active.entity(name).depends_on)
    return [name for name in dependency_order(list(specs.values())) if name in wanted]


def launch_session(
    *, entities: Sequence[str] | None = None, options: RunOptions | None = None, user: str = ""
) -> MigrationStatus:
    """Create a pending session with one control row per entity.

    A second launch of an entity that is already active fails at the database (partial
    unique index), and the refusal names the session that holds it.
    """
    options = options or RunOptions()
    if not 1 <= options.batch_size <= MAX_BATCH_SIZE:
        raise LaunchRefusedError(
            f"the batch size must be between 1 and {MAX_BATCH_SIZE:,} (got {options.batch_size:,})"
        )
    if options.timestamp_overlap_s is not None and options.timestamp_overlap_s < 0:
        raise LaunchRefusedError("--timestamp-overlap cannot be negative")
    active = load_active_mapping()
    names = entities_with_dependencies(active, entities)
    if not names:
        raise LaunchRefusedError(
            "there is no active mapping to run",
            hint="Import one first: diffmig mappings import FILE",
        )
    mode = RunMode.BASELINE if options.baseline else RunMode.DIFFERENTIAL
    try:
        with transaction.atomic():
            session = MigrationStatus.objects.create(
                options={
                    **asdict(options),
                    "entities": names,
                    "today": timezone.localdate().isoformat(),
                },
                launched_by=user,
                entities_pending=names,
            )
            for position, name in enumerate(names):
                spec = active.entity(name)
                MigrationControl.objects.create(
                    session=session,
                    entity_type=name,
                    mode=mode,
                    position=position,
                    depends_on=[d for d in spec.depends_on if d in names],
                    mapping_version=active.versions[name],
                    phase=PHASE_ANALYZE,
                )
    except IntegrityError as exc:
        holder = (
            MigrationControl.objects.filter(entity_type__in=names, state__in=ACTIVE_ENTITY_STATES)
            .values_list("entity_type", "session_id")
            .first()
        )
        if holder is None:
            raise
        raise LaunchRefusedError(
            f"entity {holder[0]!r} is already running in session {holder[1]}",
            hint=f"Wait for it, or pause/cancel it: diffmig cancel {holder[1]}",
        ) from exc
    log_event(
        session_id=session.migration_session_id,
        operation=OperationType.CHECKPOINT_SAVE,
        message=f"session launched for {', '.join(names)}"
        + (" (baseline)" if options.baseline else "")
        + (" (dry run)" if options.dry_run else ""),
        context={"options": session.options, "user": user},
    )
    return session


# -- control -----------------------------------------------------------------------------------


def _lease_is_fresh(session_id: uuid.UUID) -> bool:
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
    log_event(
        session_id=session_id,
        operation=OperationType.CHECKPOINT_SAVE,
        message=f"pause requested by {user or 'cli'}",
    )
    if not _lease_is_fresh(session_id):
        # Nobody is executing it (the process is gone, or RQ is between two units): pause
        # it now — unless the executor's own dispatch stopped it in the meantime.
        with _unless_stopped_meanwhile(session_id, SessionStatus.PAUSED):
            _stop_controls(session_id, EntityState.PAUSED)
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
    log_event(
        session_id=session_id,
        operation=OperationType.CHECKPOINT_SAVE,
        message=f"cancel requested by {user or 'cli'}",
    )
    if status != SessionStatus.RUNNING or not _lease_is_fresh(session_id):
        with _unless_stopped_meanwhile(session_id, SessionStatus.CANCELLED):
            _finish_cancelled(session_id, expected=status)
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
        if _lease_is_fresh(session_id):
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
    log_event(
        session_id=session_id,
        operation=OperationType.CHECKPOINT_RESTORE,
        message=f"session resumed by {user or 'cli'}: continuing from the last checkpoints",
    )
    return session


# -- execution ---------------------------------------------------------------------------------


class RunObserver(Protocol):
    """Told how a session advances (the CLI's progress bars)."""

    def phase_started(self, entity: str, phase: str, total: int) -> None: ...

    def advanced(self, entity: str, phase: str, rows: int) -> None: ...


@dataclass
class _Context:
    session: MigrationStatus
    active: ActiveMapping
    source: Database
    destination: Database
    options: RunOptions
    today: dt.date
    owner: str
    fault: FaultHook | None
    observer: RunObserver | None = None
    # At most this many batches per step, then the step returns "slice" (a unit of an RQ
    # job, services.dispatch); None: every batch of the phase (the in-process executor).
    max_batches: int | None = None


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


def fail_unopened(*, session_id: uuid.UUID, error: ConnectionOpenError) -> MigrationStatus:
    """A running session whose connections cannot be opened: every entity still to run
    fails with the reason (resumable), and the session ends ``failed`` — never left
    ``running`` for a run that cannot do anything."""
    for control in _controls(session_id):
        if control.state not in FINISHED_ENTITY:
            _fail_entity(None, control, error)
    return _finish(session_id)


@contextmanager
def session_context(
    *,
    session_id: uuid.UUID,
    owner: str | None = None,
    fault: FaultHook | None = None,
    observer: RunObserver | None = None,
    max_batches: int | None = None,
) -> Iterator[_Context]:
    """What executing a session needs: its options, the active mapping, both databases open."""
    session = MigrationStatus.objects.get(migration_session_id=session_id)
    saved = session.options or {}
    options = RunOptions(
        baseline=bool(saved.get("baseline")),
        dry_run=bool(saved.get("dry_run")),
        batch_size=int(saved.get("batch_size") or DEFAULT_BATCH_SIZE),
        max_delete_share=saved.get("max_delete_share"),
        confirmed_deletes=saved.get("confirmed_deletes"),
        timestamp_overlap_s=saved.get("timestamp_overlap_s"),
    )
    active = load_active_mapping()
    # Both connections are opened (connected) before any work: one that cannot be opened
    # raises ConnectionOpenError, which the executors turn into a failed entity.
    source = open_for_run(active.mapping.source)
    try:
        destination = open_for_run(active.mapping.destination)
    except ConnectionOpenError:
        source.close()
        raise
    context = _Context(
        session=session,
        active=active,
        source=source,
        destination=destination,
        options=options,
        today=dt.date.fromisoformat(saved["today"]) if saved.get("today") else timezone.localdate(),
        owner=owner or uuid.uuid4().hex,
        fault=fault,
        observer=observer,
        max_batches=max_batches,
    )
    try:
        with fewer_collections():  # rarer garbage collections while it runs (engine.gc_policy)
            yield context
    finally:
        source.close()
        destination.close()


def _controls(session_id: uuid.UUID) -> list[MigrationControl]:
    return list(MigrationControl.objects.filter(session_id=session_id).order_by("position"))


def _execute(ctx: _Context) -> MigrationStatus:
    session_id = ctx.session.migration_session_id
    runners: dict[str, EntityRunner] = {}
    for control in _controls(session_id):
        if control.state in FINISHED_ENTITY or control.phase in (DELETE, PHASE_DONE):
            continue
        if _blocked_by(control):
            transition_entity(
                control_id=control.pk,
                to=EntityState.BLOCKED,
                message="a parent entity did not complete",
            )
            continue
        with _heartbeat(ctx, control):
            stopped = _run_entity_upserts(ctx, control, runners)
        if stopped:
            return _finish_stopped(session_id, stopped)
    for control in reversed(_controls(session_id)):
        if control.state in FINISHED_ENTITY or control.phase != DELETE:
            continue
        with _heartbeat(ctx, control):
            stopped = _run_entity_deletes(ctx, control, runners)
        if stopped:
            return _finish_stopped(session_id, stopped)
    return _finish(session_id)


def _heartbeat(ctx: _Context, control: MigrationControl) -> AbstractContextManager:
    """Keep the entity's lease fresh from a thread while this process works on it, so a
    long analysis does not look like a dead executor. On PostgreSQL only: SQLite (the
    embedded default, one process) would make the two threads contend for its lock."""
    if connection.vendor != "postgresql":
        return nullcontext()
    return leases.heartbeat(control_id=control.pk, owner=ctx.owner)


def _blocked_by(control: MigrationControl) -> bool:
    if not control.depends_on:
        return False
    return MigrationControl.objects.filter(
        session_id=control.session_id,
        entity_type__in=control.depends_on,
        state__in=(EntityState.FAILED, EntityState.BLOCKED, EntityState.CANCELLED),
    ).exists()


def _take_lease(ctx: _Context, control: MigrationControl) -> bool:
    return (
        transition_entity(
            control_id=control.pk,
            to=EntityState.RUNNING,
            expected=(EntityState.PENDING, EntityState.PAUSED),
            lease_owner=ctx.owner,
            lease_heartbeat=timezone.now(),
        )
        or MigrationControl.objects.filter(
            pk=control.pk, state=EntityState.RUNNING, lease_owner=ctx.owner
        ).exists()
    )


def _unexpected(error: Exception) -> DiffmigError:
    """Wrap an error no one foresaw, keeping its traceback for the log."""
    wrapped = DiffmigError(
        f"unexpected {type(error).__name__}: {error}",
        hint="The entity stopped at its last checkpoint; `diffmig resume` retries it. "
        "The log entry holds the traceback.",
    )
    wrapped.traceback = "".join(traceback.format_exception(error))
    return wrapped


def _stop_on_error(ctx: _Context, control: MigrationControl, error: Exception) -> None:
    """How a step ends on an error. On RQ a transient one (a lost connection, the control
    database's included) is left to the job machinery: the unit stops where its last
    checkpoint is and the watchdog retries it, counting an attempt. Anything else, and every
    error in-process, fails the entity (resumable) with the reason."""
    transient = isinstance(error, TransientError | OperationalError | InterfaceError)
    if transient and ctx.max_batches is not None:
        raise error
    _fail_entity(ctx, control, error if isinstance(error, DiffmigError) else _unexpected(error))


def _fail_entity(
    ctx: _Context | None, control: MigrationControl, error: DiffmigError, *, refused: bool = False
) -> None:
    message = ("refused: " if refused else "") + str(error)
    transition_entity(control_id=control.pk, to=EntityState.FAILED, message=message)
    summary = dict(
        MigrationStatus.objects.get(migration_session_id=control.session_id).error_summary or {}
    )
    summary.setdefault("entities", {})[control.entity_type] = message
    if refused:
        summary.setdefault("refused", []).append(control.entity_type)
    MigrationStatus.objects.filter(migration_session_id=control.session_id).update(
        error_summary=summary
    )
    log_event(
        session_id=control.session_id,
        entity=control.entity_type,
        operation=OperationType.DIFFERENTIAL_DETECTION
        if refused
        else OperationType.RECORD_MIGRATION,
        level=LogLevel.ERROR,
        message=f"{control.entity_type}: {message}" + (f" — {error.hint}" if error.hint else ""),
        error_details={
            "error": type(error).__name__,
            "traceback": getattr(error, "traceback", None),
        },
    )


def _runner(
    ctx: _Context,
    control: MigrationControl,
    runners: dict[str, EntityRunner],
    partition: MigrationCheckpoint | None = None,
) -> EntityRunner:
    if partition is not None:
        runners = {}  # a partition's runner reads its own range: not shared
    elif control.entity_type in runners:
        return runners[control.entity_type]
    spec = ctx.active.entity(control.entity_type)
    compiled = _compile(ctx, spec)
    rules = compile_rules(spec.name, list(spec.validation), [f.destination for f in spec.fields])
    writer = TableWriter(
        ctx.destination, ctx.destination.require_table(spec.destination_table), spec.destination_key
    )
    ports = EntityRunPorts(
        control_id=control.pk,
        run_id=control.run_id,
        session_id=control.session_id,
        analysis_id=control.analysis_id,
        entity=spec.name,
        lease_owner=ctx.owner,
        mapping_version=control.mapping_version or ctx.active.versions[spec.name],
        dry_run=ctx.options.dry_run,
    )
    if partition is not None:
        ports.partition_id = partition.pk
        ports.unit = partition.unit
        ports.lo = int(partition.checkpoint_data["lo"])
        ports.hi = int(partition.checkpoint_data["hi"])
    runners[spec.name] = EntityRunner(
        compiled=compiled,
        source=ctx.source,
        writer=writer,
        ports=ports,
        rules=rules,
        batch_size=ctx.options.batch_size,
        dry_run=ctx.options.dry_run,
        today=ctx.today,
        fault=ctx.fault,
        progress=_progress_reporter(ctx),
    )
    return runners[spec.name]


@dataclass(frozen=True)
class _ObserverProgress:
    """The runner's progress sink (engine.ports.ProgressSink), told to a RunObserver."""

    observer: RunObserver

    def batch_committed(self, result: BatchResult) -> None:
        self.observer.advanced(result.entity, result.phase, len(result.outcomes))


def _progress_reporter(ctx: _Context) -> _ObserverProgress | None:
    return None if ctx.observer is None else _ObserverProgress(ctx.observer)


def _announce(ctx: _Context, control: MigrationControl, phase: str) -> None:
    if ctx.observer is None:
        return
    control.refresh_from_db()
    if phase == DELETE:
        total = control.deleted_count
    else:
        total = control.new_count + control.modified_count + control.retry_count
    ctx.observer.phase_started(control.entity_type, phase, total)


def _compile(ctx: _Context, spec: EntitySpec) -> CompiledEntity:
    return compile_entity(
        spec,
        ctx.source.require_table(spec.source_table),
        ctx.destination.require_table(spec.destination_table),
        timezone=ctx.source.timezone,
    )


def _checkpoint(control: MigrationControl, phase: str, *, announce: bool = True) -> int:
    position = checkpoint_position(control, phase)
    # A unit's continuation (ctx.max_batches) is no restore: the watchdog logs a takeover.
    if position and announce:
        log_event(
            session_id=control.session_id,
            entity=control.entity_type,
            operation=OperationType.CHECKPOINT_RESTORE,
            message=f"{control.entity_type}: {phase} continues after change {position}",
        )
    return position


def _check_confirmed_deletes(entity: str, deleted: int, confirmed: dict[str, int] | None) -> None:
    """Refuse an entity whose deletes grew after the operator confirmed them."""
    if confirmed is None:
        return
    allowed = int(confirmed.get(entity, 0))
    if deleted > allowed:
        raise DeleteGuardError(
            f"entity {entity!r}: the run would delete {deleted} records but only {allowed} "
            "were confirmed at launch; nothing was written to it",
            hint="The source changed after the analysis: analyse again, confirm the new deletes.",
        )


def _run_entity_upserts(
    ctx: _Context, control: MigrationControl, runners: dict[str, EntityRunner]
) -> str | None:
    if not _take_lease(ctx, control):
        return None
    control.refresh_from_db()
    spec = ctx.active.entity(control.entity_type)
    try:
        if control.phase == PHASE_ANALYZE or control.analysis_id is None:
            # One transaction from the analysis to the entity pointing at it: a worker killed
            # in between leaves no analysis behind, and the next attempt's is the only one.
            with transaction.atomic():
                analysis = analyze_into_result(
                    source=ctx.source,
                    entity=spec,
                    mapping_version=control.mapping_version or ctx.active.versions[spec.name],
                    session_id=control.session_id,
                    baseline=ctx.options.baseline,
                    resolve_gone=not ctx.options.dry_run,
                    overlap=overlap_from_seconds(ctx.options.timestamp_overlap_s),
                    batch_size=ctx.options.batch_size,
                    destination=ctx.destination,
                )
                counts = analysis.counts
                try:
                    check_delete_guard(spec, counts, max_delete_share=ctx.options.max_delete_share)
                    _check_confirmed_deletes(
                        spec.name, counts.deleted, ctx.options.confirmed_deletes
                    )
                except DeleteGuardError as error:
                    _fail_entity(ctx, control, error, refused=True)
                    return None
                # Compare-and-set on the lease: a copy that lost it during a long analysis
                # must not point the entity at its own change set (nor split it into
                # partitions); its analysis is rolled back with it.
                held = MigrationControl.objects.filter(pk=control.pk, lease_owner=ctx.owner).update(
                    analysis=analysis.result,
                    phase=UPSERT,
                    new_count=counts.new,
                    modified_count=counts.modified,
                    deleted_count=counts.deleted,
                    unchanged_count=counts.unchanged,
                    retry_count=counts.retry,
                )
                if not held:
                    raise LeaseLostError(
                        f"entity {spec.name!r}: the lease was lost during the analysis"
                    )
                split = partitions.create(
                    run_id=control.run_id, analysis_id=analysis.result.pk, entity=spec.name
                )
            if split:
                log_event(
                    session_id=control.session_id,
                    entity=spec.name,
                    operation=OperationType.CHECKPOINT_SAVE,
                    message=f"{spec.name}: its upserts are split into {split} partitions of "
                    f"at most {settings.DIFFMIG_PARTITION_ROWS} changes",
                    context={"partitions": split},
                )
            MigrationStatus.objects.filter(migration_session_id=control.session_id).update(
                total_records_remaining=_remaining(control.session_id)
            )
            control.refresh_from_db()
        runner = _runner(ctx, control, runners)
        _announce(ctx, control, UPSERT)
        if partitions.of_run(control.run_id).exists():
            if ctx.max_batches is None:
                # In-process: the partitions one after another.
                stopped = _run_partitions(ctx, control)
                if stopped != "done":
                    return stopped
            elif not partitions.all_done(control.run_id):
                # A unit (services.dispatch): the workers run the partitions; this unit
                # comes back for the second pass once they are all done.
                return "slice"
            outcome = UnitOutcome(status="done", last_change_id=0)
        else:
            outcome = runner.run(
                phase=UPSERT,
                after_id=_checkpoint(control, UPSERT, announce=ctx.max_batches is None),
                max_batches=ctx.max_batches,
            )
        if outcome.status == "slice":
            return "slice"
        if outcome.status == "done":
            # reference: self — point the rows written with NULL at their parents, now that
            # every row of the entity exists (services.run_ports, engine.selfref).
            outcome = run_link_phase(control=control, runner=runner, fault=ctx.fault) or outcome
    except LeaseLostError:
        return "lost"  # another executor holds the entity now: this copy stops, writing nothing
    except DeleteGuardError as error:
        # The source read ended early (engine.reads): refused like the delete guard, with its
        # analysis rolled back and nothing written; a resume analyses again.
        _fail_entity(ctx, control, error, refused=True)
        return None
    except Exception as error:
        _stop_on_error(ctx, control, error)
        return None
    if outcome.status in ("paused", "cancelled"):
        return outcome.status
    if not MigrationControl.objects.filter(pk=control.pk, lease_owner=ctx.owner).update(
        phase=DELETE
    ):
        return "lost"
    return None


def _run_partitions(ctx: _Context, control: MigrationControl) -> str | None:
    """Every partition still to do, one after another, each under its own lease (taken with
    the entity's owner token): ``done``, or how it stopped (None: the entity failed)."""
    for partition in partitions.pending(control.run_id):
        if not leases.acquire_partition(checkpoint_id=partition.pk, owner=ctx.owner):
            return "lost"
        try:
            how = run_partition_step(ctx, control, partition)
        finally:
            leases.release(control_id=partition.pk, owner=ctx.owner, model=MigrationCheckpoint)
        if how != "done":
            return how
    return "done"


def run_partition_step(
    ctx: _Context, control: MigrationControl, partition: MigrationCheckpoint
) -> str | None:
    """The upserts of one partition whose lease ``ctx.owner`` holds, from its checkpoint; at
    most ``ctx.max_batches`` batches. Returns ``done`` (the partition is complete), ``slice``,
    ``paused``, ``cancelled``, ``lost`` or None (the entity failed)."""
    try:
        runner = _runner(ctx, control, {}, partition)
        outcome = runner.run(
            phase=UPSERT, after_id=partition.batch_position, max_batches=ctx.max_batches
        )
    except LeaseLostError:
        return "lost"
    except Exception as error:
        _stop_on_error(ctx, control, error)
        return None
    if outcome.status != "done":
        return outcome.status
    if not partitions.complete(checkpoint_id=partition.pk, owner=ctx.owner):
        return "lost"
    return "done"


def _run_entity_deletes(
    ctx: _Context, control: MigrationControl, runners: dict[str, EntityRunner]
) -> str | None:
    if control.state != EntityState.RUNNING and not _take_lease(ctx, control):
        return None
    try:
        runner = _runner(ctx, control, runners)
        _announce(ctx, control, DELETE)
        # Rows deleted together may point at each other (reference: self): unlink them first.
        unlink_for_deletes(control=control, runner=runner)
        outcome = runner.run(
            phase=DELETE,
            after_id=_checkpoint(control, DELETE, announce=ctx.max_batches is None),
            max_batches=ctx.max_batches,
        )
    except LeaseLostError:
        return "lost"  # another executor holds the entity now: this copy stops, writing nothing
    except Exception as error:
        _stop_on_error(ctx, control, error)
        return None
    if outcome.status in ("paused", "cancelled", "slice"):
        return outcome.status
    MigrationControl.objects.filter(pk=control.pk).update(phase=PHASE_DONE)
    if transition_entity(
        control_id=control.pk, to=EntityState.COMPLETED, expected=EntityState.RUNNING
    ):
        # detection: timestamp | hybrid — completing is what moves the cursor on
        # (services.cursors); say where it now stands.
        announce_cursor(control_id=control.pk)
    control.refresh_from_db()
    log_event(
        session_id=control.session_id,
        entity=control.entity_type,
        operation=OperationType.RECORD_MIGRATION,
        message=(
            f"{control.entity_type}: completed: {control.processed_count} processed, "
            f"{control.failed_count} failed, {control.skipped_count} skipped"
        ),
    )
    return None


def _remaining(session_id: uuid.UUID) -> int:
    controls = MigrationControl.objects.filter(session_id=session_id)
    return sum(EntityCounts.of(c).remaining for c in controls)


def _stop_controls(session_id: uuid.UUID, state: str) -> None:
    for control in MigrationControl.objects.filter(session_id=session_id).exclude(
        state__in=FINISHED_ENTITY
    ):
        if control.state != state:
            transition_entity(
                control_id=control.pk, to=state, expected=control.state, lease_owner=""
            )


def _finish_cancelled(session_id: uuid.UUID, *, expected: str) -> MigrationStatus:
    _stop_controls(session_id, EntityState.CANCELLED)
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
        level=LogLevel.WARN,
        message="session cancelled: what was written stays in the destination, with its record map "
        "entries; the next run continues from there",
    )
    return session


def _finish_stopped(session_id: uuid.UUID, how: str) -> MigrationStatus:
    if how == "lost":
        # Taken over (resume of a stale lease): the new holder finishes the session.
        return MigrationStatus.objects.get(migration_session_id=session_id)
    if how == "cancelled":
        return _finish_cancelled(session_id, expected=SessionStatus.RUNNING)
    _stop_controls(session_id, EntityState.PAUSED)
    transition_session(
        session_id=session_id, to=SessionStatus.PAUSED, expected=SessionStatus.RUNNING
    )
    refresh_entity_lists(session_id=session_id)
    log_event(
        session_id=session_id,
        operation=OperationType.CHECKPOINT_SAVE,
        message="session paused after its last checkpoint; resume continues from there",
    )
    return MigrationStatus.objects.get(migration_session_id=session_id)


def _finish(session_id: uuid.UUID) -> MigrationStatus:
    states = set(
        MigrationControl.objects.filter(session_id=session_id).values_list("state", flat=True)
    )
    final = SessionStatus.COMPLETED if states <= {EntityState.COMPLETED} else SessionStatus.FAILED
    MigrationStatus.objects.filter(migration_session_id=session_id).update(
        total_records_remaining=_remaining(session_id),
        performance_metrics=_metrics(session_id),
    )
    session = transition_session(session_id=session_id, to=final, expected=SessionStatus.RUNNING)
    refresh_entity_lists(session_id=session_id)
    log_event(
        session_id=session_id,
        operation=OperationType.RECORD_MIGRATION,
        level=LogLevel.INFO if final == SessionStatus.COMPLETED else LogLevel.ERROR,
        message=f"session {final}: {session.total_records_processed} records processed",
    )
    alert_session_finished(session_id=session_id)  # failed, or completed with failures
    return session


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


# -- steps for executors that run units (services.dispatch) -----------------------------------
# An RQ job runs one step of one entity with the same functions as the in-process loop above.


def run_entity_step(ctx: _Context, control: MigrationControl) -> str | None:
    """The next step of one entity whose lease ``ctx.owner`` holds: its analysis and upserts,
    or, once its phase is ``delete``, its deletes; at most ``ctx.max_batches`` batches.

    Returns ``slice`` (more to do), ``paused`` or ``cancelled`` (it stopped as asked),
    ``lost`` (another executor took the lease) or None (the step ended: done, or failed).
    """
    runners: dict[str, EntityRunner] = {}
    if control.phase in (DELETE, PHASE_DONE):
        return _run_entity_deletes(ctx, control, runners)
    return _run_entity_upserts(ctx, control, runners)


def fail_entity(*, control: MigrationControl, error: DiffmigError) -> None:
    """Fail one entity with its reason (in the session's error summary and the log)."""
    _fail_entity(None, control, error)


def finish_session(*, session_id: uuid.UUID, stopped: str | None = None) -> MigrationStatus:
    """End a running session none of whose units holds a lease any more: ``paused`` or
    ``cancelled`` as asked (``stopped``), else completed or failed by its entities."""
    if stopped:
        return _finish_stopped(session_id, stopped)
    return _finish(session_id)


def run_session(
    *,
    entities: Sequence[str] | None = None,
    options: RunOptions | None = None,
    user: str = "",
    fault: Callable[[str], None] | None = None,
) -> MigrationStatus:
    """Launch and execute in this process (the embedded default, and tests)."""
    session = launch_session(entities=entities, options=options, user=user)
    return execute_session(session_id=session.migration_session_id, fault=fault)
