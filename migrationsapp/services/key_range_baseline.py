"""A first baseline read by key range: no stage, no change set written and read back.

An entity whose record map holds nothing yet has nothing to compare: every source row is
new. Its analysis then only counts the source table and cuts it into partitions of
``DIFFMIG_PARTITION_ROWS`` rows by key (``analyze_by_key_range``); its upserts read the
table in key order, ``WHERE key > last ORDER BY key LIMIT n``, each row with its content
hash from the same SELECT (``KeyRangeRunPorts``, engine.reads_key_range), instead of a hash
read of every key into a stage, a change set of every row, and a fetch of each batch's rows
by key.

When (``reads_by_key_range``): a run that writes (a dry run keeps its change set to show),
hash detection, no ``reference: self`` field (its second pass reads the change set), no
record map row and no open quarantine entry of the entity, and a source table whose primary
key is the entity's ``source_key`` of integer columns (engine.reads_key_range says why).

A unit's checkpoint (the entity's ``upsert``, or a partition's ``upsert:<i>``) keeps the
rows it has done as its ``batch_position`` (a change's id is its row's place in the read)
and the last key done as ``checkpoint_data["after"]``: a crash replays at most the batch
after it, which writes the same rows with the same UUIDs. The analysis result says
``"read": "key_range"`` in its metadata, and counts every row as new.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from migrationsapp.engine.connectors import Database
from migrationsapp.engine.diff import AnalysisCounts
from migrationsapp.engine.errors import DiffmigError, TerminalError
from migrationsapp.engine.key_texts import key_texts
from migrationsapp.engine.mapping import EntitySpec, hashed_columns
from migrationsapp.engine.mapping.spec import SELF_REFERENCE
from migrationsapp.engine.outcomes import Phase
from migrationsapp.engine.ports import BatchResult, Change, ChangeBatch
from migrationsapp.engine.reads import SourceHandle
from migrationsapp.engine.reads_key_range import (
    key_range_cuts,
    key_range_refusal,
    read_key_range,
)
from migrationsapp.engine.reads_slices import boundary_json, boundary_values
from migrationsapp.models import (
    DifferentialAnalysisResult,
    MigrationCheckpoint,
    MigrationControl,
    MigrationStatus,
    QuarantinedRecord,
    RecordMap,
)
from migrationsapp.models.choices import AuditAction, ChangeKind, OperationType
from migrationsapp.services import partitions
from migrationsapp.services.analysis import (
    last_completed,
    log_analyzed,
    store_counts,
    warn_of_unindexed_references,
)
from migrationsapp.services.analysis_slices import new_analysis
from migrationsapp.services.cursors import hash_metadata
from migrationsapp.services.logs import log_event
from migrationsapp.services.run_ports import EntityRunPorts

KEY_RANGE = "key_range"  # analysis_metadata["read"] of an analysis read this way


def reads_by_key_range(*, source: SourceHandle, entity: EntitySpec, dry_run: bool) -> bool:
    """Whether the entity's upserts read its source by key range (see the module;
    ``DIFFMIG_KEY_RANGE_BASELINE`` off: never)."""
    if not settings.DIFFMIG_KEY_RANGE_BASELINE or dry_run or entity.detection != "hash":
        return False
    if any(f.reference in (SELF_REFERENCE, entity.name) for f in entity.fields):
        return False
    if RecordMap.objects.filter(entity_type=entity.name).exists():
        return False
    if QuarantinedRecord.objects.filter(entity_type=entity.name, resolved_at__isnull=True).exists():
        return False
    try:
        return key_range_refusal(source, entity.source_table, entity.source_key) is None
    except DiffmigError:
        return False  # a table that cannot be read: the analysis reports it, as ever


def read_by_key_range(analysis_id: uuid.UUID | None) -> bool:
    """Whether the analysis ``analysis_id`` was made by ``analyze_by_key_range``."""
    if analysis_id is None:
        return False
    metadata = (
        DifferentialAnalysisResult.objects.filter(pk=analysis_id)
        .values_list("analysis_metadata", flat=True)
        .first()
    )
    return bool(metadata) and metadata.get("read") == KEY_RANGE


@dataclass
class KeyRangeAnalysis:
    """An analysis by key range: its result and counts, and where its partitions start."""

    result: DifferentialAnalysisResult
    counts: AnalysisCounts
    cuts: list[tuple]
    every: int

    def partition(self, *, run_id: uuid.UUID) -> int:
        """The entity run's partitions, one per range of ``every`` rows; how many (0: one
        unit)."""
        return partitions.create_key_ranges(
            run_id=run_id,
            entity=self.result.entity_type,
            count=self.counts.new,
            cuts=self.cuts,
            every=self.every,
        )


def analyze_by_key_range(
    *,
    source: SourceHandle,
    entity: EntitySpec,
    mapping_version: int,
    session_id: uuid.UUID,
    baseline: bool,
    destination: Database | None = None,
) -> KeyRangeAnalysis:
    """Count the entity's source rows (every one new) and cut them into partitions; store
    the analysis result. Call it in the transaction that points the entity at it."""
    every = settings.DIFFMIG_PARTITION_ROWS
    started = timezone.now()
    count, cuts = key_range_cuts(source, entity.source_table, entity.source_key, every=every)
    counts = AnalysisCounts(new=count, source_count=count, mapped_count=0)
    counts.seconds = (timezone.now() - started).total_seconds()
    result = new_analysis(
        session_id=session_id,
        entity=entity,
        mapping_version=mapping_version,
        analysis_timestamp=started,
        last_migration_timestamp=last_completed(entity.name),
    )
    # What any hash analysis stores, and how this one read its source.
    store_counts(
        result,
        counts,
        baseline,
        hashed_columns(entity),
        group="",
        detection={**hash_metadata(), "read": KEY_RANGE},
    )
    log_analyzed(
        session_id=session_id,
        entity=entity,
        baseline=baseline,
        counts=counts,
        result=result,
        note="; the record map is empty: the upserts read the source by key range, "
        "with no change set",
    )
    warn_of_unindexed_references(
        session_id=session_id, entity=entity, result=result, counts=counts, destination=destination
    )
    return KeyRangeAnalysis(result=result, counts=counts, cuts=cuts, every=every)


def settle_counts(control: MigrationControl) -> None:
    """Once the upserts of an entity read by key range are done: its new records become the
    rows its read met. The source may have gained or lost rows since the analysis counted
    them (the rows gained behind the read, and those lost, are the next run's changes);
    a difference is logged."""
    control.refresh_from_db()
    read = control.processed_count + control.failed_count + control.skipped_count
    if read == control.new_count:
        return
    MigrationControl.objects.filter(pk=control.pk).update(new_count=read)
    MigrationStatus.objects.filter(migration_session_id=control.session_id).update(
        total_records_remaining=Greatest(
            F("total_records_remaining") - (control.new_count - read), 0
        )
    )
    log_event(
        session_id=control.session_id,
        entity=control.entity_type,
        operation=OperationType.RECORD_MIGRATION,
        action=AuditAction.ENTITY_ANALYSIS_NOTE,
        message=f"{control.entity_type}: its read by key range met {read} source rows, where "
        f"the analysis counted {control.new_count}: the source changed while it was read; "
        "the next run compares every row",
        context={"counted": control.new_count, "read": read},
    )
    control.refresh_from_db()


@dataclass
class KeyRangeRunPorts(EntityRunPorts):
    """``EntityRunPorts`` whose upserts come from the source, by key range, not from a
    change set: ``source`` the source database, ``start`` and ``end`` the unit's keys (the
    key's values; None: the table's first or last), ``total`` its rows at
    the analysis. A change's id is its row's place in the read, from ``lo`` (1 at first)."""

    source: SourceHandle | None = None
    spec: EntitySpec | None = None
    columns: tuple[str, ...] = ()
    start: tuple | None = None
    end: tuple | None = None
    total: int = 0
    # The key of the last row of the batch read last, by its place: where the next starts.
    _keys: dict[int, tuple] = field(default_factory=dict)

    @property
    def first_position(self) -> int:
        return 0 if self.lo is None else self.lo - 1

    def read_changes(self, *, after_id: int, phase: Phase, limit: int) -> list[Change]:
        if phase == Phase.DELETE:
            return super().read_changes(after_id=after_id, phase=phase, limit=limit)
        spec = self.spec
        assert spec is not None and self.source is not None
        batch = read_key_range(
            self.source,
            spec.source_table,
            spec.source_key,
            self.columns,
            hashed_columns(spec),
            after=self._key_after(after_id),
            start=self.start,
            end=self.end,
            limit=limit,
        )
        if not batch:
            return []
        new = ChangeKind.NEW
        changes = ChangeBatch(
            (
                Change(position, new, list(key), text, content_hash)
                for position, key, text, content_hash in zip(
                    range(after_id + 1, after_id + 1 + len(batch)),
                    batch.keys,
                    key_texts(batch.keys),
                    batch.hashes,
                    strict=True,
                )
            ),
            batch.columns,
        )
        self._keys = {changes[-1].id: batch.keys[-1]}
        return changes

    def _key_after(self, position: int) -> tuple | None:
        """The last key done at ``position`` (None: the unit's start): the batch read last,
        or the unit's checkpoint."""
        if position in self._keys:
            return self._keys[position]
        if position == self.first_position:
            return None
        data = (
            MigrationCheckpoint.objects.filter(
                migration_run_id=self.run_id, unit=self.unit_of(Phase.UPSERT)
            )
            .values_list("checkpoint_data", flat=True)
            .first()
        ) or {}
        if data.get("last_change_id") != position or not data.get("after"):
            raise TerminalError(
                f"entity {self.entity!r}: its checkpoint at row {position} has no key to "
                "continue from",
                hint="Cancel this session and run the baseline again: it writes the same rows.",
            )
        return boundary_values(data["after"])

    # -- the checkpoint: rows done and the last key ----------------------------------------

    def _remaining(self, checkpoint: MigrationCheckpoint, created: bool, result: BatchResult):
        if result.phase == Phase.DELETE:
            return super()._remaining(checkpoint, created, result)
        last = self.total if self.hi is None else self.hi
        return max(last - result.last_change_id, 0)

    def _checkpoint_extras(self, result: BatchResult) -> dict[str, Any]:
        key = self._keys.get(result.last_change_id)
        if result.phase == Phase.DELETE or key is None:
            return {}
        return {"after": boundary_json(key)}


def key_range_ports(
    ports: dict[str, Any],
    *,
    source: SourceHandle,
    spec: EntitySpec,
    columns: tuple[str, ...],
    total: int,
    partition: MigrationCheckpoint | None,
) -> KeyRangeRunPorts:
    """The ports of an entity (or one partition) whose analysis read by key range;
    ``ports`` are ``EntityRunPorts``'s arguments."""
    data = partition.checkpoint_data if partition is not None else {}
    start, end = data.get("start"), data.get("end")
    return KeyRangeRunPorts(
        **ports,
        source=source,
        spec=spec,
        columns=columns,
        start=None if start is None else boundary_values(start),
        end=None if end is None else boundary_values(end),
        total=total,
    )
