"""Which analysis a hash analysis reads into, and the stages that no analysis will resume.

A hash analysis is created ``reading`` and reads its source slice by slice into a stage of
its own (``analysis_stage.py``), each slice committed with its checkpoint. Started again for
the same session and entity (its worker was killed, its session resumed), it resumes that
session's ``reading`` analysis of the entity after its last committed slice, provided it
reads the same thing (table, key, hashed columns, mapping version) and its stage still holds
every row its checkpoint counts; otherwise that analysis is abandoned (stage dropped, row
deleted) and a new one starts. An analysis without a session (``diffmig analyze``) never
resumes, and a ``complete`` one never does.

``drop_stale_stages`` removes the stages that nothing will resume, with their unfinished
analyses: a ``reading`` analysis of a completed or cancelled session, one without a session
left idle for a day, and a stage whose analysis is complete or gone (retention deleted it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from migrationsapp.engine.connectors import Database
from migrationsapp.engine.diff import SliceCheckpoint, stage_source
from migrationsapp.engine.mapping import EntitySpec
from migrationsapp.engine.ports import FaultHook
from migrationsapp.models import DifferentialAnalysisResult
from migrationsapp.models.analysis import AnalysisStatus
from migrationsapp.models.choices import Detection, SessionStatus
from migrationsapp.services.analysis_stage import (
    SlicedStageStore,
    analysis_of_stage,
    drop_stage_table,
    stage_tables,
    staged_rows,
)
from migrationsapp.services.changeset import COLUMNS

# A session in one of these states runs no more: its unfinished analyses will not resume.
NEVER_RESUMES = (SessionStatus.COMPLETED, SessionStatus.CANCELLED)
# An analysis without a session that has committed no slice for this long is not running.
IDLE_WITHOUT_SESSION = dt.timedelta(days=1)


def _reads(entity: EntitySpec, columns: tuple[str, ...]) -> dict[str, object]:
    """What an analysis reads: a resumed analysis must read the same."""
    return {
        "source_table": entity.source_table,
        "source_key": list(entity.source_key),
        "hashed_columns": list(columns),
        # A stage of other columns (an analysis read before an upgrade) is not resumed.
        "stage_columns": COLUMNS,
    }


def reading_analysis(
    *,
    session_id: uuid.UUID | None,
    entity: EntitySpec,
    columns: tuple[str, ...],
    mapping_version: int,
    analysis_timestamp: dt.datetime,
    last_migration_timestamp: dt.datetime | None,
) -> DifferentialAnalysisResult:
    """The analysis to read the entity's source into: the session's to resume, or a new one."""
    reads = _reads(entity, columns)
    if session_id is not None:
        found = DifferentialAnalysisResult.objects.filter(
            session_id=session_id, entity_type=entity.name, status=AnalysisStatus.READING
        ).first()
        if found is not None:
            if _resumable(found, mapping_version=mapping_version, reads=reads):
                return found
            abandon(found.pk)
    return new_analysis(
        session_id=session_id,
        entity=entity,
        mapping_version=mapping_version,
        analysis_timestamp=analysis_timestamp,
        last_migration_timestamp=last_migration_timestamp,
        detection=Detection.HASH,
        status=AnalysisStatus.READING,
        analysis_metadata={"reads": reads},
    )


def new_analysis(
    *,
    session_id: uuid.UUID | None,
    entity: EntitySpec,
    mapping_version: int,
    analysis_timestamp: dt.datetime,
    last_migration_timestamp: dt.datetime | None,
    **fields: object,
) -> DifferentialAnalysisResult:
    """A new analysis result of ``entity`` (its detection unless ``fields`` says otherwise),
    which every kind of analysis starts from."""
    return DifferentialAnalysisResult.objects.create(
        session_id=session_id,
        entity_type=entity.name,
        mapping_version=mapping_version,
        analysis_timestamp=analysis_timestamp,
        last_migration_timestamp=last_migration_timestamp,
        **{"detection": entity.detection, **fields},
    )


def _resumable(
    found: DifferentialAnalysisResult, *, mapping_version: int, reads: dict[str, object]
) -> bool:
    if found.mapping_version != mapping_version or found.detection != Detection.HASH:
        return False
    if (found.analysis_metadata or {}).get("reads") != reads:
        return False
    # An UNLOGGED stage is emptied by a crash recovery of the control database: resuming
    # on it would take every row read before as deleted.
    expected = SliceCheckpoint.from_dict(found.slice_checkpoint).rows_staged
    return (staged_rows(found.pk) or 0) == expected


def abandon(analysis_id: uuid.UUID) -> None:
    """Drop an unfinished analysis and its stage (a complete analysis is left alone)."""
    with transaction.atomic():
        deleted, _ = DifferentialAnalysisResult.objects.filter(
            pk=analysis_id, status=AnalysisStatus.READING
        ).delete()
        if deleted:
            drop_stage_table(analysis_id)


def read_source(
    *,
    source: Database,
    entity: EntitySpec,
    columns: tuple[str, ...],
    mapping_version: int,
    session_id: uuid.UUID | None,
    resolve_gone: bool = False,
    analysis_timestamp: dt.datetime | None = None,
    last_migration_timestamp: dt.datetime | None = None,
    progress: Callable[[int], None] | None = None,
    slice_rows: int | None = None,
    fault: FaultHook | None = None,
) -> tuple[SlicedStageStore, SliceCheckpoint]:
    """Read the rest of the entity's source into its analysis's stage, a committed slice
    at a time (``DIFFMIG_ANALYSIS_SLICE_ROWS`` rows unless ``slice_rows`` says), then index
    its keys; the store, ready to classify, and the read's last checkpoint.

    Raises IntegrityError, naming the key, when a key is on two rows (the analysis is
    abandoned)."""
    result = reading_analysis(
        session_id=session_id,
        entity=entity,
        columns=columns,
        mapping_version=mapping_version,
        analysis_timestamp=analysis_timestamp or timezone.now(),
        last_migration_timestamp=last_migration_timestamp,
    )
    store = SlicedStageStore(result=result, entity=entity.name, resolve_gone=resolve_gone)
    read = stage_source(
        source=source,
        entity=entity,
        hashed_columns=columns,
        store=store,
        checkpoint=store.checkpoint,
        slice_rows=settings.DIFFMIG_ANALYSIS_SLICE_ROWS if slice_rows is None else slice_rows,
        progress=progress,
        fault=fault,
    )
    try:
        with transaction.atomic():
            store.index_stage()
    except IntegrityError:
        # A key on two rows: refused, and read afresh next time (the source may be fixed).
        abandon(result.pk)
        raise
    return store, read


def drop_stale_stages(*, now: dt.datetime | None = None, dry_run: bool = False) -> int:
    """Drop every stage that no analysis will resume, and those unfinished analyses; the
    number of analyses dropped (with ``dry_run``: that would be, dropping nothing)."""
    now = now or timezone.now()
    # The tables first: an analysis's row commits before its stage is created, so every
    # stage listed here has its analysis in the queries below, unless it is gone.
    staged = {analysis_of_stage(name) for name in stage_tables()}
    reading = DifferentialAnalysisResult.objects.filter(status=AnalysisStatus.READING)
    stale = set(
        reading.filter(session__overall_status__in=NEVER_RESUMES).values_list("pk", flat=True)
    ) | set(
        reading.filter(session__isnull=True, updated_at__lt=now - IDLE_WITHOUT_SESSION).values_list(
            "pk", flat=True
        )
    )
    still_reading = set(
        reading.filter(pk__in=staged).exclude(pk__in=stale).values_list("pk", flat=True)
    )
    orphans = staged - still_reading - stale
    if dry_run:
        return len(stale) + len(orphans)
    for analysis_id in stale:
        abandon(analysis_id)
    for analysis_id in orphans:
        if analysis_id is not None:
            drop_stage_table(analysis_id)
    return len(stale) + len(orphans)
