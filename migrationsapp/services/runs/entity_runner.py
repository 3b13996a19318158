"""The engine's runner for one entity of a session (or one partition of it), given its ports
on the control database, and the observer told what it does."""

from __future__ import annotations

from dataclasses import dataclass

from migrationsapp.engine.compile import CompiledEntity, compile_entity
from migrationsapp.engine.load import TableWriter
from migrationsapp.engine.mapping import EntitySpec
from migrationsapp.engine.outcomes import Phase
from migrationsapp.engine.ports import BatchResult
from migrationsapp.engine.runner import EntityRunner
from migrationsapp.engine.validation import compile_rules
from migrationsapp.models import MigrationCheckpoint, MigrationControl
from migrationsapp.services.key_range_baseline import key_range_ports, read_by_key_range
from migrationsapp.services.run_ports import EntityRunPorts
from migrationsapp.services.runs.context import RunContext, RunObserver


def entity_runner(
    ctx: RunContext,
    control: MigrationControl,
    runners: dict[str, EntityRunner],
    partition: MigrationCheckpoint | None = None,
) -> EntityRunner:
    """The runner of ``control``'s entity: the one in ``runners`` (kept for the entity's
    later phases), else a new one; a partition's reads its own range and is not kept."""
    if partition is not None:
        runners = {}
    elif control.entity_type in runners:
        return runners[control.entity_type]
    spec = ctx.active.entity(control.entity_type)
    rules = compile_rules(spec.name, list(spec.validation), [f.destination for f in spec.fields])
    writer = TableWriter(
        ctx.destination, ctx.destination.require_table(spec.destination_table), spec.destination_key
    )
    compiled = _compile(ctx, spec)
    arguments = {
        "control_id": control.pk,
        "run_id": control.run_id,
        "session_id": control.session_id,
        "analysis_id": control.analysis_id,
        "entity": spec.name,
        "lease_owner": ctx.owner,
        "mapping_version": control.mapping_version or ctx.active.versions[spec.name],
        "dry_run": ctx.options.dry_run,
    }
    if read_by_key_range(control.analysis_id):
        ports: EntityRunPorts = key_range_ports(
            arguments,
            source=ctx.source,
            spec=spec,
            columns=compiled.source_columns,
            total=control.new_count,
            partition=partition,
        )
    else:
        ports = EntityRunPorts(**arguments)
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
        progress=None if ctx.observer is None else _ObserverProgress(ctx.observer),
    )
    return runners[spec.name]


@dataclass(frozen=True)
class _ObserverProgress:
    """The runner's progress sink (engine.ports.ProgressSink), told to a RunObserver."""

    observer: RunObserver

    def batch_committed(self, result: BatchResult) -> None:
        self.observer.advanced(result.entity, result.phase, len(result.outcomes))


def announce(ctx: RunContext, control: MigrationControl, phase: Phase) -> None:
    """Tell the observer, if any, that the entity's ``phase`` starts, and its size."""
    if ctx.observer is None:
        return
    control.refresh_from_db()
    if phase == Phase.DELETE:
        total = control.deleted_count
    else:
        total = control.new_count + control.modified_count + control.retry_count
    ctx.observer.phase_started(control.entity_type, phase, total)


def _compile(ctx: RunContext, spec: EntitySpec) -> CompiledEntity:
    return compile_entity(
        spec,
        ctx.source.require_table(spec.source_table),
        ctx.destination.require_table(spec.destination_table),
        timezone=ctx.source.timezone,
    )
