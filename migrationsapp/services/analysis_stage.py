"""The stage of a sliced analysis: a table of its own in the control database, kept between
transactions, so that each slice of the source commits and a killed analysis resumes.

``diffmig_stage_<analysis id>`` holds the same ``(key_text, key_json, hash)`` rows as the
temporary stage of ``changeset.py``: UNLOGGED on PostgreSQL (nothing in it needs to survive a
server crash: the resume checks it and starts over), a plain table on SQLite. A slice's rows
and its checkpoint on the analysis commit in one transaction; the checkpoint moves by
compare-and-set on ``slices_done``, so that of two copies of one analysis only one commits
each slice. The unique key index is built once, when every slice is in, in a transaction of
its own (a repeated key refuses the analysis there, before any caller's transaction), and the
classification drops the table in the transaction that writes the change set.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from django.db import connection, transaction
from django.utils import timezone

from migrationsapp.engine.diff import SliceCheckpoint
from migrationsapp.engine.errors import LeaseLostError
from migrationsapp.models import DifferentialAnalysisResult
from migrationsapp.models.analysis import AnalysisStatus
from migrationsapp.services.changeset import COLUMNS, ControlChangeSetStore

STAGE_PREFIX = "diffmig_stage_"


def stage_table(analysis_id: uuid.UUID) -> str:
    """The (unquoted) name of an analysis's stage."""
    return f"{STAGE_PREFIX}{analysis_id.hex}"


def analysis_of_stage(name: str) -> uuid.UUID | None:
    """The analysis a stage table belongs to; None for any other table."""
    if not name.startswith(STAGE_PREFIX):
        return None
    try:
        return uuid.UUID(hex=name.removeprefix(STAGE_PREFIX))
    except ValueError:
        return None


def stage_tables() -> list[str]:
    """Every analysis stage in the control database."""
    with connection.cursor() as cursor:
        names = connection.introspection.table_names(cursor)
    return [name for name in names if analysis_of_stage(name) is not None]


def drop_stage_table(analysis_id: uuid.UUID) -> None:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {quote(stage_table(analysis_id))}")


def staged_rows(analysis_id: uuid.UUID) -> int | None:
    """The rows an analysis's stage holds; None when it has none (dropped, or emptied by a
    PostgreSQL crash recovery, which truncates UNLOGGED tables)."""
    name = stage_table(analysis_id)
    if name not in stage_tables():
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(name)}")
        return int(cursor.fetchone()[0])


class SlicedStageStore(ControlChangeSetStore):
    """The change-set store of a sliced analysis (``engine.diff.SlicedChangeSetStore``).

    ``result`` is the analysis being read (status ``reading``); its stage is created when
    missing and kept when present (a resumed analysis, checked first by the caller)."""

    def __init__(
        self, *, result: DifferentialAnalysisResult, entity: str, resolve_gone: bool = False
    ) -> None:
        self.result = result
        self.checkpoint = SliceCheckpoint.from_dict(result.slice_checkpoint)
        quote = connection.ops.quote_name
        name = stage_table(result.id)
        super().__init__(
            analysis_id=result.id,
            entity=entity,
            resolve_gone=resolve_gone,
            stage=quote(name),
            stage_index=quote(f"{name}_key"),
            staged=self.checkpoint.rows_staged,
        )

    def create_stage(self) -> None:
        # UNLOGGED: no WAL for rows that only this analysis reads, and that a resume checks.
        unlogged = "UNLOGGED " if self.vendor == "postgresql" else ""
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE {unlogged}TABLE IF NOT EXISTS {self.stage} ({COLUMNS})")

    def drop_stage(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.stage}")

    def index_stage(self) -> None:
        """The unique key index, built once the last slice is in (and kept by a resumed
        analysis that built it before it was stopped); a repeated key fails it with an
        IntegrityError naming the key."""
        if self._indexed:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {self.stage_index} ON {self.stage} (key_text)"
            )
        self._indexed = True

    def stage_slice(
        self,
        batches: Iterable[list[tuple[str, str, str]]],
        checkpoint: Callable[[], SliceCheckpoint],
    ) -> SliceCheckpoint:
        staged_before = self.staged
        try:
            with transaction.atomic():
                for rows in batches:
                    self.add_source(rows)
                after = checkpoint()
                moved = DifferentialAnalysisResult.objects.filter(
                    pk=self.result.pk,
                    status=AnalysisStatus.READING,
                    slices_done=self.checkpoint.slices,
                ).update(
                    slices_done=after.slices,
                    rows_seen=after.rows_seen,
                    slice_checkpoint=after.as_dict(),
                    updated_at=timezone.now(),
                )
                if not moved:
                    raise LeaseLostError(
                        f"entity {self.entity!r}: slice {after.slices} of analysis "
                        f"{self.result.pk} was committed by another copy of it"
                    )
        except BaseException:
            self.staged = staged_before  # the slice's rows went with its transaction
            raise
        self.checkpoint = after
        self.result.slices_done = after.slices
        self.result.rows_seen = after.rows_seen
        self.result.slice_checkpoint = after.as_dict()
        return after
