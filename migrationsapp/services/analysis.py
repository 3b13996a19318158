"""Analysing an entity: what is new, modified, deleted, unchanged or to retry since the last run."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from django.db import IntegrityError, transaction
from django.utils import timezone

from migrationsapp.engine.connectors import Database
from migrationsapp.engine.diff import AnalysisCounts, read_counts
from migrationsapp.engine.errors import DiffmigError, MappingError, MappingProblem
from migrationsapp.engine.introspect import unindexed_references
from migrationsapp.engine.mapping import EntitySpec, hashed_columns
from migrationsapp.engine.ports import FaultHook
from migrationsapp.models import AnalysisChange, DifferentialAnalysisResult, MigrationControl
from migrationsapp.models.analysis import DISPLAY_CAP, AnalysisStatus
from migrationsapp.models.choices import (
    AuditAction,
    ChangeKind,
    EntityState,
    LogLevel,
    OperationType,
)
from migrationsapp.services.analysis_slices import new_analysis, read_source
from migrationsapp.services.changeset import ControlChangeSetStore
from migrationsapp.services.cursors import (
    WindowControlStore,
    analyze_window_for,
    detection_note,
    hash_metadata,
)
from migrationsapp.services.databases import open_named
from migrationsapp.services.logs import log_event
from migrationsapp.services.mappings import load_active_mapping

# PostgreSQL's detail of a duplicate staged key: 'Key (key_text)=(A-1) is duplicated.' from
# the stage's unique index, 'already exists' from a primary key.
_REPEATED_KEY = re.compile(r"Key \(key_text\)=\((.*)\) (?:is duplicated|already exists)")


@dataclass
class EntityAnalysis:
    entity: str
    result: DifferentialAnalysisResult
    counts: AnalysisCounts
    # Destination foreign keys into this entity's table that no index serves (see
    # ``unindexed_reference_notes``), one line each.
    notes: list[str] = field(default_factory=list)


def unindexed_reference_notes(*, destination: Database, entity: EntitySpec) -> list[str]:
    """A line per destination foreign key into ``entity``'s table whose child columns have no
    index, when the entity's deletes remove rows (``deletes: hard``): the database then
    checks each deleted row by reading the whole child table (measured: 6 deletes a second
    against 2 million unindexed children). Nothing when the table cannot be introspected."""
    if entity.deletes != "hard":
        return []
    try:
        table = destination.table(entity.destination_table)
        if table is None:
            return []
        with destination.connect() as conn:
            found = unindexed_references(conn, destination.dialect, table.name, table.schema)
    except (DiffmigError, sa.exc.SQLAlchemyError):
        return []  # an unreachable destination is the run's to report, not the analysis's
    return [
        f"{entity.name}: its deletes scan table {ref.child} row by row: foreign key "
        f"{ref.constraint} ({', '.join(ref.columns)}) has no index; add one: {ref.create_index}"
        for ref in found
    ]


def analyze_into_result(
    *,
    source: Database,
    entity: EntitySpec,
    mapping_version: int,
    session_id: uuid.UUID | None = None,
    baseline: bool = False,
    group: str = "",
    progress: Callable[[int], None] | None = None,
    resolve_gone: bool = False,
    overlap: dt.timedelta | None = None,
    batch_size: int | None = None,
    destination: Database | None = None,
    slice_rows: int | None = None,
    fault: FaultHook | None = None,
) -> EntityAnalysis:
    """Analyse one entity and store a DifferentialAnalysisResult with its change set.

    Hash detection reads the source in key slices (``slice_rows``, default
    ``DIFFMIG_ANALYSIS_SLICE_ROWS``), each committed unless the caller holds a transaction,
    and resumes the session's unfinished analysis of the entity (``services.analysis_slices``);
    its change set, counts and ``complete`` status commit together. ``fault`` is called after
    each slice's commit (tests crash there). ``overlap`` and ``batch_size`` concern timestamp
    and hybrid detection only (the window's overlap, default 5 minutes; the rows per read);
    see ``services.cursors``. With ``destination``, foreign keys that would make the entity's
    deletes slow are warned of.
    """
    now = timezone.now()
    previous = last_completed(entity.name)
    columns = hashed_columns(entity)
    store: ControlChangeSetStore
    if entity.detection == "hash":
        try:
            sliced, read = read_source(
                source=source,
                entity=entity,
                columns=columns,
                mapping_version=mapping_version,
                session_id=session_id,
                resolve_gone=resolve_gone,
                analysis_timestamp=now,
                last_migration_timestamp=previous,
                progress=progress,
                slice_rows=slice_rows,
                fault=fault,
            )
        except IntegrityError as exc:
            raise _repeated_key_error(entity, exc) from exc
        store, result, detection = sliced, sliced.result, hash_metadata()
        started = time.monotonic()
        with transaction.atomic():
            counts = read_counts(
                store.classify(baseline=baseline, mapping_version=mapping_version), read
            )
            counts.seconds += time.monotonic() - started
            result.status = AnalysisStatus.COMPLETE
            store_counts(result, counts, baseline, columns, group, detection)
    else:
        try:
            with transaction.atomic():
                result = new_analysis(
                    session_id=session_id,
                    entity=entity,
                    mapping_version=mapping_version,
                    analysis_timestamp=now,
                    last_migration_timestamp=previous,
                )
                store = WindowControlStore(
                    analysis_id=result.id, entity=entity.name, resolve_gone=resolve_gone
                )
                counts, detection = analyze_window_for(
                    source=source,
                    entity=entity,
                    columns=columns,
                    store=store,
                    mapping_version=mapping_version,
                    baseline=baseline,
                    overlap=overlap,
                    batch_size=batch_size,
                    progress=progress,
                )
                store_counts(result, counts, baseline, columns, group, detection)
        except IntegrityError as exc:
            raise _repeated_key_error(entity, exc) from exc
    log_analyzed(
        session_id=session_id,
        entity=entity,
        baseline=baseline,
        counts=counts,
        result=result,
        note=detection_note(detection),
    )
    if counts.null_keys:
        log_event(
            session_id=session_id,
            entity=entity.name,
            operation=OperationType.VALIDATION,
            action=AuditAction.ENTITY_ANALYSIS_NOTE,
            level=LogLevel.WARN,
            message=f"{entity.name}: {counts.null_keys} source row(s) have NULL in source_key "
            f"{list(entity.source_key)} and are not migrated (a NULL identifies no record): "
            + "; ".join(counts.null_key_samples)
            + (" …" if counts.null_keys > len(counts.null_key_samples) else "")
            + "; give them a key in the source, or choose key columns without NULLs",
            context={"null_keys": counts.null_keys, "samples": counts.null_key_samples},
        )
    if store.resolved_gone:
        log_event(
            session_id=session_id,
            entity=entity.name,
            operation=OperationType.VALIDATION,
            action=AuditAction.QUARANTINE_GONE,
            message=f"{entity.name}: {store.resolved_gone} quarantined record(s) left the source "
            "and were resolved",
        )
    notes = warn_of_unindexed_references(
        session_id=session_id, entity=entity, result=result, counts=counts, destination=destination
    )
    return EntityAnalysis(entity=entity.name, result=result, counts=counts, notes=notes)


def warn_of_unindexed_references(
    *,
    session_id: uuid.UUID | None,
    entity: EntitySpec,
    result: DifferentialAnalysisResult,
    counts: AnalysisCounts,
    destination: Database | None,
) -> list[str]:
    """``unindexed_reference_notes`` kept in the analysis's metadata and logged as warnings;
    the notes (none without ``destination``)."""
    notes = unindexed_reference_notes(destination=destination, entity=entity) if destination else []
    if notes:
        result.analysis_metadata = {**result.analysis_metadata, "unindexed_references": notes}
        result.save(update_fields=["analysis_metadata"])
    for note in notes:
        log_event(
            session_id=session_id,
            entity=entity.name,
            operation=OperationType.VALIDATION,
            action=AuditAction.ENTITY_ANALYSIS_NOTE,
            level=LogLevel.WARN,
            message=note,
            context={"analysis_id": str(result.id), "deleted": counts.deleted},
        )
    return notes


def log_analyzed(
    *,
    session_id: uuid.UUID | None,
    entity: EntitySpec,
    baseline: bool,
    counts: AnalysisCounts,
    result: DifferentialAnalysisResult,
    note: str = "",
) -> None:
    """The analysis's line in the session's log: its counts and seconds, then ``note``."""
    log_event(
        session_id=session_id,
        entity=entity.name,
        operation=OperationType.BASELINE_ANALYSIS
        if baseline
        else OperationType.DIFFERENTIAL_DETECTION,
        action=AuditAction.ENTITY_ANALYZED,
        message=(
            f"{entity.name}: {counts.source_count} source records: {counts.new} new, "
            f"{counts.modified} modified, {counts.deleted} deleted, {counts.unchanged} unchanged, "
            f"{counts.retry} retry ({counts.seconds:.2f} s)" + note
        ),
        performance_data={
            "seconds": round(counts.seconds, 4),
            "source_records": counts.source_count,
        },
        context={"analysis_id": str(result.id), **counts.as_dict()},
    )


def read_entity_source(
    *,
    source: Database,
    entity: EntitySpec,
    mapping_version: int,
    session_id: uuid.UUID,
    progress: Callable[[int], None] | None = None,
    fault: FaultHook | None = None,
) -> None:
    """The read of a hash analysis, each slice committed: called outside any transaction, it
    leaves the session's analysis of the entity read to its end (or resumes it), and
    ``analyze_into_result``, in the transaction that uses the analysis, only classifies it.
    Nothing for timestamp and hybrid detection, whose window is read in that transaction."""
    if entity.detection != "hash":
        return
    try:
        read_source(
            source=source,
            entity=entity,
            columns=hashed_columns(entity),
            mapping_version=mapping_version,
            session_id=session_id,
            last_migration_timestamp=last_completed(entity.name),
            progress=progress,
            fault=fault,
        )
    except IntegrityError as exc:
        raise _repeated_key_error(entity, exc) from exc


def last_completed(entity: str) -> dt.datetime | None:
    """When the entity's last completed run finished."""
    return (
        MigrationControl.objects.filter(entity_type=entity, state=EntityState.COMPLETED)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )


def _repeated_key_error(entity: EntitySpec, exc: IntegrityError) -> MappingError:
    """The stage's unique key refused a key: the declared source_key does not identify a row."""
    repeated = _REPEATED_KEY.search(str(exc))
    example = f" (key {repeated.group(1)!r} is on more than one row)" if repeated else ""
    return MappingError(
        [
            MappingProblem(
                entity=entity.name,
                field=None,
                reason=f"source_key {list(entity.source_key)} is not unique in table "
                f"{entity.source_table!r}{example}; choose columns that identify one row",
            )
        ]
    )


def store_counts(
    result: DifferentialAnalysisResult,
    counts: AnalysisCounts,
    baseline: bool,
    columns: tuple[str, ...],
    group: str,
    detection: dict,
) -> None:
    """The analysis's counts, the first keys of each kind of its change set, and its
    metadata (``detection``: what the detection mode sees, and more the caller adds)."""
    samples: dict[str, list[str]] = {}
    truncated = False
    for kind in (ChangeKind.NEW, ChangeKind.MODIFIED, ChangeKind.DELETED):
        keys = list(
            AnalysisChange.objects.filter(analysis=result, kind=kind)
            .order_by("id")
            .values_list("legacy_key_text", flat=True)[: DISPLAY_CAP + 1]
        )
        truncated = truncated or len(keys) > DISPLAY_CAP
        samples[kind] = keys[:DISPLAY_CAP]
    result.new_records = samples[ChangeKind.NEW]
    result.modified_records = samples[ChangeKind.MODIFIED]
    result.deleted_records = samples[ChangeKind.DELETED]
    result.truncated = truncated
    result.source_record_count = counts.source_count
    result.destination_record_count = counts.mapped_count
    result.new_count = counts.new
    result.modified_count = counts.modified
    result.deleted_count = counts.deleted
    result.unchanged_count = counts.unchanged
    result.retry_count = counts.retry
    result.analysis_metadata = {
        "baseline": baseline,
        "hashed_columns": list(columns),
        "seconds": round(counts.seconds, 4),
        "group": group,
        # What the detection mode sees and cannot see (a timestamp window misses some).
        **detection,
        "null_keys": counts.null_keys,
    }
    result.save()


def analyze_entities(
    *, entities: Sequence[str] | None = None, progress: Callable[[str, int], None] | None = None
) -> tuple[str, list[EntityAnalysis]]:
    """``diffmig analyze``: analyse each active entity (or those named); write nothing else."""
    active = load_active_mapping(entities=entities)
    if entities:
        for name in entities:
            active.entity(name)
    group = uuid.uuid4().hex
    results: list[EntityAnalysis] = []
    source = open_named(active.mapping.source)
    # The destination only for its catalogue, and only when some entity deletes rows.
    destination = None
    try:
        if any(spec.deletes == "hard" for spec in active.mapping.entities):
            destination = _open_for_notes(active.mapping.destination)
        for spec in active.mapping.entities:
            results.append(
                analyze_into_result(
                    source=source,
                    entity=spec,
                    mapping_version=active.versions[spec.name],
                    group=group,
                    progress=(lambda n, name=spec.name: progress(name, n)) if progress else None,
                    destination=destination,
                )
            )
    finally:
        source.close()
        if destination is not None:
            destination.close()
    return group, results


def _open_for_notes(name: str) -> Database | None:
    """The destination, for the analysis's notes; None when it cannot be opened (the analysis
    reads the source alone and stays possible while the destination is away)."""
    try:
        return open_named(name)
    except DiffmigError:
        return None
