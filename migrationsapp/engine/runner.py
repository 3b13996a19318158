"""The batch loop of one entity: read → row pipeline → write → checkpoint.

The runner knows nothing of Django, RQ or the web: it is handed its ports
(``engine.ports``: the source reader, the destination writer, the change set, the record
map, the checkpoint store with its lease, the stop signal, the progress sink). A batch's
destination writes commit first; then ``commit_batch`` records the batch in the control
database in one transaction. A crash between the two replays the batch, which writes the
same rows (same UUIDs), so nothing is duplicated.

The loop itself (stop requests, slices, the commit, the fault points) is
``engine.batch_loop``'s, shared with the second pass of ``reference: self``; the checks of
a batch's rows (transform, validate, references, adoption, unique) are
``engine.row_pipeline``'s, shared with verify and the mapping preview; this module reads and
writes one batch. Every batch measures its stages (``engine.stages``): read, transform,
validate and write here, the control commit in the checkpoint store, which records the five
with the batch.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .adopt import Adoption, adopt_existing
from .batch_loop import UnitOutcome, run_batches
from .changes import RawChanges, field_changes
from .compile import CompiledEntity
from .errors import RowError
from .key_texts import DestinationUUIDs, key_texts
from .outcomes import Phase, RecordAction
from .ports import (
    DEFAULT_BATCH_SIZE,
    DELETE,
    UPSERT,
    BatchResult,
    Change,
    ChangeBatch,
    DestinationWriter,
    FaultHook,
    ProgressSink,
    RecordOutcome,
    RunPorts,
    SourceReader,
    StopRequest,
)
from .row_columns import SourceRows
from .row_pipeline import Adopter, References, RememberedParents, RowPipeline
from .stages import StageSeconds, clock
from .validation import CompiledRule

__all__ = [
    "DELETE",
    "UPSERT",
    "BatchResult",
    "Change",
    "EntityRunner",
    "FaultHook",
    "RecordOutcome",
    "RunPorts",
    "StopRequest",
    "UnitOutcome",
]


@dataclass
class EntityRunner:
    """The upserts or the deletes of one entity, a batch at a time, through its ports."""

    compiled: CompiledEntity
    source: SourceReader
    writer: DestinationWriter
    ports: RunPorts
    rules: Sequence[CompiledRule] = ()
    batch_size: int = DEFAULT_BATCH_SIZE
    dry_run: bool = False
    today: dt.date = field(default_factory=dt.date.today)
    # Called at named points; tests inject crashes here (e.g. "after_destination_commit").
    fault: FaultHook | None = None
    # Told of every committed batch (progress bars, live pages).
    progress: ProgressSink | None = None
    _parents: RememberedParents = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Bound to the ports, not to this runner: a runner referring to itself would live
        # until the next full garbage collection, which a run makes rare (engine.gc_policy),
        # and keep what its parents' lookup remembered.
        self._parents = RememberedParents(partial(self.ports.lookup_uuids, include_deleted=False))

    @property
    def entity(self) -> str:
        return self.compiled.spec.name

    def run(self, *, phase: Phase, after_id: int, max_batches: int | None = None) -> UnitOutcome:
        """The batches of ``phase`` (upserts or deletes) after change ``after_id``."""
        phase = Phase(phase)
        write = self._upsert_batch if phase == Phase.UPSERT else self._delete_batch

        def run_batch(changes: Sequence[Change], stages: StageSeconds, started: float):
            outcomes = write(changes, stages)
            return BatchResult(
                entity=self.entity,
                phase=phase,
                last_change_id=changes[-1].id,
                outcomes=outcomes,
                seconds=clock() - started,
                dry_run=self.dry_run,
                stages=stages,
                started=started,
            )

        return run_batches(
            after_id=after_id,
            read=lambda after: self.ports.read_changes(
                after_id=after, phase=phase, limit=self.batch_size
            ),
            run_batch=run_batch,
            commit=self.ports.commit_batch,
            stop_requested=self.ports.stop_requested,
            max_batches=max_batches,
            fault=self.fault,
            committed=self.progress.batch_committed if self.progress is not None else None,
        )

    # -- upserts -----------------------------------------------------------------------------

    def _upsert_batch(self, changes: Sequence[Change], stages: StageSeconds) -> list[RecordOutcome]:
        with stages.measure("read"):
            present, source = self._rows_of(changes)
            known = self.ports.lookup_uuids(
                self.entity, [c.key_text for c in changes], include_deleted=True
            )
        outcomes: dict[str, RecordOutcome] = {}
        with stages.measure("transform"):
            new_uuid = DestinationUUIDs(self.entity)
            record_uuids = [known.get(c.key_text) or new_uuid(c.key_text) for c in present]
            if len(present) < len(changes):
                read = {c.key_text for c in present}
                for change in changes:
                    if change.key_text not in read:
                        # Gone from the source since the analysis: the next analysis sees the
                        # delete.
                        outcomes[change.key_text] = self._outcome(
                            change,
                            RecordAction.SKIPPED,
                            known.get(change.key_text) or new_uuid(change.key_text),
                            RowError("gone from the source since the analysis", rule="source"),
                        )
        # Transform, validate, references, adoption, unique: the pipeline times its stages.
        checked = self._pipeline(known).check_source(
            [c.key_text for c in present], record_uuids, source, stages=stages
        )
        for index, error in checked.errors.items():
            self._fail(outcomes, present[index], checked.uuids[index], error)
        passing = checked.passing()
        notes, links, uuids = checked.notes, checked.links, checked.uuids

        refused: dict[uuid.UUID, RowError] = {}
        changed: dict[uuid.UUID, RawChanges] = {}
        # Only an update's event keeps the fields it changed: a batch of new records (a
        # baseline's) spares the destination a probe of its stored row per row.
        updates = bool(notes) or any(present[index].key_text in known for index in passing)
        if not self.dry_run and passing:
            with stages.measure("write"):
                # The batch goes to the writer as the columns the pipeline made.
                written = checked.values.take(passing)
                key_column = self.compiled.spec.destination_key
                batch = written.with_first(key_column, [uuids[index] for index in passing])
                refused = self.writer.upsert_columns(
                    batch, changes=changed if updates else None, fresh=not updates
                )
        for index in passing:
            change = present[index]
            record_uuid = uuids[index]
            if record_uuid in refused:
                # The database's reason, and its column when named.
                self._fail(outcomes, change, record_uuid, refused[record_uuid])
                continue
            note = notes.get(index, "")
            updated = change.key_text in known or bool(note)
            action = RecordAction.UPDATED if updated else RecordAction.CREATED
            outcome = self._outcome(change, action, record_uuid)
            outcome.note = note
            outcome.links = links.get(index)
            if updated and record_uuid in changed:
                # A `reference: self` column held back for the second pass was written
                # NULL for now: its value before is not what this run changes it to.
                held = outcome.links or {}
                found = changed[record_uuid]
                outcome.changes = field_changes({c: v for c, v in found.items() if c not in held})
            outcomes[change.key_text] = outcome
        return [outcomes[c.key_text] for c in changes]

    def _rows_of(self, changes: Sequence[Change]) -> tuple[list[Change], SourceRows]:
        """The changes whose source row was read, and those rows in the same order: the
        columns that came with them (a baseline read by key range), else fetched by key (a
        row gone from the source since the analysis leaves its change out)."""
        if isinstance(changes, ChangeBatch):
            return list(changes), SourceRows(columns=changes.source)
        spec = self.compiled.spec
        fetched = self.source.fetch_rows(
            spec.source_table,
            spec.source_key,
            [tuple(c.key) for c in changes],
            self.compiled.source_columns,
        )
        by_text = dict(zip(key_texts(fetched), fetched.values(), strict=True))
        present = [c for c in changes if c.key_text in by_text]
        return present, SourceRows([by_text[c.key_text] for c in present])

    def _pipeline(self, known: Collection[str]) -> RowPipeline:
        """The batch's checks: references through the record map (`reference: self` parents
        still to come are linked by the second pass), adoption of new records by
        ``match_on``, uniqueness against this writer's table."""
        return RowPipeline(
            self.compiled,
            self.rules,
            self.today,
            references=References.for_run(self._parents, self.ports.in_change_set),
            owners=self.writer,
            adopt=self._adopter(known) if self.compiled.spec.match_on else None,
        )

    def _adopter(self, known: Collection[str]) -> Adopter:
        """New records (no record-map entry) take the UUID of a destination row that
        matches on ``match_on``."""

        def adopt(rows: Sequence[tuple[str, uuid.UUID, Mapping[str, Any]]]) -> Adoption:
            fresh = [row for row in rows if row[0] not in known]
            if not fresh:
                return Adoption()
            return adopt_existing(
                entity=self.entity,
                match_on=self.compiled.spec.match_on,
                writer=self.writer,
                ports=self.ports,
                candidates=fresh,
            )

        return adopt

    # -- deletes -----------------------------------------------------------------------------

    def _delete_batch(self, changes: Sequence[Change], stages: StageSeconds) -> list[RecordOutcome]:
        spec = self.compiled.spec
        with stages.measure("read"):
            known = self.ports.lookup_uuids(
                self.entity, [c.key_text for c in changes], include_deleted=False
            )
        if spec.deletes == "report":
            return [self._outcome(c, RecordAction.SKIPPED, known.get(c.key_text)) for c in changes]
        refused: dict[uuid.UUID, str] = {}
        if not self.dry_run:
            uuids = [known[c.key_text] for c in changes if c.key_text in known]
            with stages.measure("write"):
                if spec.deletes == "soft":
                    column = spec.soft_delete_column or ""
                    refused = self.writer.soft_delete(uuids, column, dt.datetime.now(dt.UTC))
                else:
                    refused = self.writer.delete(uuids)
        outcomes: list[RecordOutcome] = []
        for change in changes:
            record_uuid = known.get(change.key_text)
            if record_uuid is None:
                # Already marked deleted by a replayed batch: nothing left to do.
                outcomes.append(self._outcome(change, RecordAction.SKIPPED, None))
            elif record_uuid in refused:
                error = RowError(refused[record_uuid], rule="delete")
                outcomes.append(self._outcome(change, RecordAction.FAILED, record_uuid, error))
            else:
                outcomes.append(self._outcome(change, RecordAction.DELETED, record_uuid))
        return outcomes

    # -- outcomes ----------------------------------------------------------------------------

    def _outcome(
        self,
        change: Change,
        action: RecordAction,
        record_uuid: uuid.UUID | None,
        error: RowError | None = None,
    ) -> RecordOutcome:
        return RecordOutcome(
            key_text=change.key_text,
            key=change.key,
            action=action,
            uuid=record_uuid,
            content_hash=change.content_hash,
            error=error,
            change_id=change.id,
        )

    def _fail(
        self,
        outcomes: dict[str, RecordOutcome],
        change: Change,
        record_uuid: uuid.UUID,
        error: RowError,
    ) -> None:
        outcomes[change.key_text] = self._outcome(change, RecordAction.FAILED, record_uuid, error)
