"""The steps of one entity of a session: its analysis and upserts (whole, or partition by
partition), then its deletes. The in-process loop (``execute``) and a unit of an RQ job
(``services.units``) run the same steps; ``ctx.max_batches`` bounds a unit's.

A step returns a ``UnitResult`` when the entity stopped short of its end (``slice``,
``paused``, ``cancelled``, ``lost``), or None when the step ended: done, or the entity failed.
"""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from migrationsapp.engine.batch_loop import UnitOutcome
from migrationsapp.engine.diff import AnalysisCounts, check_delete_guard
from migrationsapp.engine.errors import DeleteGuardError, LeaseLostError
from migrationsapp.engine.mapping import EntitySpec
from migrationsapp.engine.outcomes import Phase, UnitStatus
from migrationsapp.engine.runner import EntityRunner
from migrationsapp.models import (
    DifferentialAnalysisResult,
    MigrationCheckpoint,
    MigrationControl,
    MigrationStatus,
)
from migrationsapp.models.choices import AuditAction, EntityState, OperationType
from migrationsapp.services import leases, partitions
from migrationsapp.services.analysis import (
    EntityAnalysis,
    analyze_into_result,
    read_entity_source,
)
from migrationsapp.services.cursors import announce_cursor, overlap_from_seconds
from migrationsapp.services.key_range_baseline import (
    KeyRangeAnalysis,
    analyze_by_key_range,
    read_by_key_range,
    reads_by_key_range,
    settle_counts,
)
from migrationsapp.services.logs import log_event
from migrationsapp.services.run_ports import checkpoint_position, run_link_phase, unlink_for_deletes
from migrationsapp.services.runs import local_processes
from migrationsapp.services.runs.context import RunContext
from migrationsapp.services.runs.entity_runner import announce, entity_runner
from migrationsapp.services.runs.failures import fail_entity, stop_on_error
from migrationsapp.services.runs.finish import remaining
from migrationsapp.services.runs.results import STOPPED_AS_ASKED, UnitResult
from migrationsapp.services.source_read_locks import source_read_lock
from migrationsapp.services.state import transition_entity


def run_entity_step(ctx: RunContext, control: MigrationControl) -> UnitResult | None:
    """The next step of one entity whose lease ``ctx.owner`` holds: its analysis and upserts,
    or, once its phase is ``delete``, its deletes; at most ``ctx.max_batches`` batches."""
    runners: dict[str, EntityRunner] = {}
    if control.phase in (Phase.DELETE, Phase.DONE):
        return run_entity_deletes(ctx, control, runners)
    return run_entity_upserts(ctx, control, runners)


def take_lease(ctx: RunContext, control: MigrationControl) -> bool:
    """Start the entity under ``ctx.owner``'s lease, or find it running under it already."""
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


def _analyze(ctx: RunContext, control: MigrationControl, spec: EntitySpec) -> bool:
    """The entity's change set, counts and partitions; False when the delete guard (or the
    deletes confirmed at launch) refused the entity. An entity with nothing migrated yet
    (services.key_range_baseline) has no change set: its upserts read the source by key
    range."""
    mapping_version = ctx.mapping_version_of(control)
    by_key_range = reads_by_key_range(source=ctx.source, entity=spec, dry_run=ctx.options.dry_run)
    if not by_key_range:
        # The source first, slice by slice, each slice committed: a worker killed while it
        # reads leaves the slices read so far, and the next attempt resumes after them. A
        # read-ahead helper (runs/read_ahead.py) may be reading it: waiting for it leaves it
        # read.
        with source_read_lock(control.session_id, spec.name):
            read_entity_source(
                source=ctx.source,
                entity=spec,
                mapping_version=mapping_version,
                session_id=control.session_id,
            )
    # One transaction from the change set to the entity pointing at it: a worker killed in
    # between leaves no change set behind, and the next attempt's is the only one.
    with transaction.atomic():
        analysis = _analysis(ctx, control, spec, mapping_version, by_key_range=by_key_range)
        counts = analysis.counts
        try:
            check_delete_guard(spec, counts, max_delete_share=ctx.options.max_delete_share)
            check_confirmed_deletes(spec.name, counts.deleted, ctx.options.confirmed_deletes)
        except DeleteGuardError as error:
            fail_entity(control=control, error=error, refused=True)
            return False
        _point_at(ctx, control, analysis.result, counts)
        if isinstance(analysis, KeyRangeAnalysis):
            split = analysis.partition(run_id=control.run_id)
        else:
            split = partitions.create(
                run_id=control.run_id, analysis_id=analysis.result.pk, entity=spec.name
            )
    if split:
        what = "source rows, by key" if by_key_range else "changes"
        log_event(
            session_id=control.session_id,
            entity=spec.name,
            operation=OperationType.CHECKPOINT_SAVE,
            action=AuditAction.ENTITY_PARTITIONED,
            message=f"{spec.name}: its upserts are split into {split} partitions of "
            f"at most {settings.DIFFMIG_PARTITION_ROWS} {what}",
            context={"partitions": split},
        )
    MigrationStatus.objects.filter(migration_session_id=control.session_id).update(
        total_records_remaining=remaining(control.session_id)
    )
    control.refresh_from_db()
    return True


def _analysis(
    ctx: RunContext,
    control: MigrationControl,
    spec: EntitySpec,
    mapping_version: int,
    *,
    by_key_range: bool,
) -> EntityAnalysis | KeyRangeAnalysis:
    """The entity's analysis, stored: its change set, or (a first baseline by key range)
    its count and the cuts of its partitions."""
    if by_key_range:
        return analyze_by_key_range(
            source=ctx.source,
            entity=spec,
            mapping_version=mapping_version,
            session_id=control.session_id,
            baseline=ctx.options.baseline,
            destination=ctx.destination,
        )
    return analyze_into_result(
        source=ctx.source,
        entity=spec,
        mapping_version=mapping_version,
        session_id=control.session_id,
        baseline=ctx.options.baseline,
        resolve_gone=not ctx.options.dry_run,
        overlap=overlap_from_seconds(ctx.options.timestamp_overlap_s),
        batch_size=ctx.options.batch_size,
        destination=ctx.destination,
    )


def _point_at(
    ctx: RunContext,
    control: MigrationControl,
    result: DifferentialAnalysisResult,
    counts: AnalysisCounts,
) -> None:
    """Point the entity at its analysis, with its counts, and move it to its upserts."""
    # Compare-and-set on the lease: a copy that lost it during a long analysis must not
    # point the entity at its own change set (nor split it into partitions); its analysis
    # is rolled back with it.
    held = MigrationControl.objects.filter(pk=control.pk, lease_owner=ctx.owner).update(
        analysis=result,
        phase=Phase.UPSERT,
        new_count=counts.new,
        modified_count=counts.modified,
        deleted_count=counts.deleted,
        unchanged_count=counts.unchanged,
        retry_count=counts.retry,
    )
    if not held:
        raise LeaseLostError(
            f"entity {control.entity_type!r}: the lease was lost during the analysis"
        )


def run_entity_upserts(
    ctx: RunContext, control: MigrationControl, runners: dict[str, EntityRunner]
) -> UnitResult | None:
    """The entity's analysis (if not done yet), its upserts, then its ``reference: self``
    pass; its phase becomes ``delete`` at the end."""
    if not take_lease(ctx, control):
        return None
    control.refresh_from_db()
    spec = ctx.active.entity(control.entity_type)
    try:
        analyzed = control.phase != Phase.ANALYZE and control.analysis_id is not None
        if not analyzed and not _analyze(ctx, control, spec):
            return None  # refused
        runner = entity_runner(ctx, control, runners)
        announce(ctx, control, Phase.UPSERT)
        if partitions.of_run(control.run_id).exists():
            if ctx.in_process:
                # The partitions one after another.
                stopped = run_partitions(ctx, control)
                if stopped != UnitResult.DONE:
                    return stopped
            elif not partitions.all_done(control.run_id):
                # A unit (services.dispatch): the workers run the partitions; this unit
                # comes back for the second pass once they are all done.
                return UnitResult.SLICE
            outcome = UnitOutcome(status=UnitStatus.DONE, last_change_id=0)
        else:
            outcome = runner.run(
                phase=Phase.UPSERT,
                after_id=checkpoint(control, Phase.UPSERT, announce=ctx.in_process),
                max_batches=ctx.max_batches,
            )
        if outcome.status == UnitStatus.SLICE:
            return UnitResult.SLICE
        if outcome.status == UnitStatus.DONE:
            # reference: self — point the rows written with NULL at their parents, now that
            # every row of the entity exists (services.run_ports, engine.selfref).
            outcome = run_link_phase(control=control, runner=runner, fault=ctx.fault) or outcome
    except LeaseLostError:
        return UnitResult.LOST  # another executor holds the entity: this copy stops, unwritten
    except DeleteGuardError as error:
        # The source read ended early (engine.reads): refused like the delete guard, with its
        # analysis rolled back and nothing written; a resume analyses again.
        fail_entity(control=control, error=error, refused=True)
        return None
    except Exception as error:
        stop_on_error(ctx, control, error)
        return None
    if outcome.status in STOPPED_AS_ASKED:
        return UnitResult(outcome.status)
    if read_by_key_range(control.analysis_id):
        settle_counts(control)
    if not MigrationControl.objects.filter(pk=control.pk, lease_owner=ctx.owner).update(
        phase=Phase.DELETE
    ):
        return UnitResult.LOST
    return None


def run_partitions(ctx: RunContext, control: MigrationControl) -> UnitResult | None:
    """Every partition still to do, each under its own lease (taken with the entity's
    owner token), shared with helper processes when ``DIFFMIG_LOCAL_PROCESSES`` allows
    (``local_processes``): ``done``, or how it stopped (None: the entity failed)."""
    count = local_processes.helper_count(len(partitions.pending(control.run_id)))
    if not count:
        return take_free_partitions(ctx, control)
    helpers = local_processes.start(ctx.session.migration_session_id, control, count)
    # The observer hears of every process's batches from the control database, until the
    # last helper has ended.
    with local_processes.progress_from_control(ctx, control):
        try:
            how = take_free_partitions(replace(ctx, observer=None), control)
        finally:
            local_processes.wait(helpers)
    if how == UnitResult.DONE and not partitions.all_done(control.run_id):
        # What a helper left (it stopped, or died): here, now that none runs.
        how = take_free_partitions(ctx, control)
    if how != UnitResult.DONE or partitions.all_done(control.run_id):
        return how
    control.refresh_from_db()
    return None if control.state != EntityState.RUNNING else UnitResult.LOST


def take_free_partitions(ctx: RunContext, control: MigrationControl) -> UnitResult | None:
    """Each partition still to do that nobody holds, one after another, under its own
    lease: ``done`` when none is left free, or how it stopped (None: the entity failed)."""
    for partition in partitions.pending(control.run_id):
        if not leases.acquire_partition(checkpoint_id=partition.pk, owner=ctx.owner):
            continue  # done meanwhile, or another process of this run holds it
        try:
            partition.refresh_from_db()  # its checkpoint, as its last holder left it
            how = run_partition_step(ctx, control, partition)
        finally:
            leases.release(holder_id=partition.pk, owner=ctx.owner, model=MigrationCheckpoint)
        if how != UnitResult.DONE:
            return how
    return UnitResult.DONE


def run_partition_step(
    ctx: RunContext, control: MigrationControl, partition: MigrationCheckpoint
) -> UnitResult | None:
    """The upserts of one partition whose lease ``ctx.owner`` holds, from its checkpoint; at
    most ``ctx.max_batches`` batches. Returns ``done`` (the partition is complete), ``slice``,
    ``paused``, ``cancelled``, ``lost`` or None (the entity failed)."""
    try:
        runner = entity_runner(ctx, control, {}, partition)
        outcome = runner.run(
            phase=Phase.UPSERT, after_id=partition.batch_position, max_batches=ctx.max_batches
        )
    except LeaseLostError:
        return UnitResult.LOST
    except Exception as error:
        stop_on_error(ctx, control, error)
        return None
    if outcome.status != UnitStatus.DONE:
        return UnitResult(outcome.status)
    if not partitions.complete(checkpoint_id=partition.pk, owner=ctx.owner):
        return UnitResult.LOST
    return UnitResult.DONE


def run_entity_deletes(
    ctx: RunContext, control: MigrationControl, runners: dict[str, EntityRunner]
) -> UnitResult | None:
    """The entity's deletes (children first: the executors order them); it completes."""
    if control.state != EntityState.RUNNING and not take_lease(ctx, control):
        return None
    try:
        runner = entity_runner(ctx, control, runners)
        announce(ctx, control, Phase.DELETE)
        # Rows deleted together may point at each other (reference: self): unlink them first.
        unlink_for_deletes(control=control, runner=runner)
        outcome = runner.run(
            phase=Phase.DELETE,
            after_id=checkpoint(control, Phase.DELETE, announce=ctx.in_process),
            max_batches=ctx.max_batches,
        )
    except LeaseLostError:
        return UnitResult.LOST  # another executor holds the entity: this copy stops, unwritten
    except Exception as error:
        stop_on_error(ctx, control, error)
        return None
    if outcome.status != UnitStatus.DONE:
        return UnitResult(outcome.status)
    MigrationControl.objects.filter(pk=control.pk).update(phase=Phase.DONE)
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
        action=AuditAction.ENTITY_COMPLETED,
        message=(
            f"{control.entity_type}: completed: {control.processed_count} processed, "
            f"{control.failed_count} failed, {control.skipped_count} skipped"
        ),
    )
    return None


def checkpoint(control: MigrationControl, phase: Phase, *, announce: bool = True) -> int:
    """Where the entity's ``phase`` continues: the last change id done (0: its start)."""
    position = checkpoint_position(control, phase)
    # A unit's continuation (ctx.max_batches) is no restore: the watchdog logs a takeover.
    if position and announce:
        # A change's id, or a row's place in a read by key range.
        by_key_range = phase == Phase.UPSERT and read_by_key_range(control.analysis_id)
        log_event(
            session_id=control.session_id,
            entity=control.entity_type,
            operation=OperationType.CHECKPOINT_RESTORE,
            action=AuditAction.ENTITY_CONTINUED,
            message=f"{control.entity_type}: {phase} continues after "
            + (f"row {position}" if by_key_range else f"change {position}"),
        )
    return position


def check_confirmed_deletes(entity: str, deleted: int, confirmed: dict[str, int] | None) -> None:
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
