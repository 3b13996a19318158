"""The batch loop of one entity: read → transform → validate → write → checkpoint.

The runner knows nothing of Django, RQ or the web: it is handed its ports
(``engine.ports``: the source reader, the destination writer, the change set, the record
map, the checkpoint store with its lease, the stop signal, the progress sink). A batch's
destination writes commit first; then ``commit_batch`` records the batch in the control
database in one transaction. A crash between the two replays the batch, which writes the
same rows (same UUIDs), so nothing is duplicated.

Every batch measures its stages (``engine.stages``): read, transform, validate and write
here, the control commit in the checkpoint store, which records the five with the batch.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .adopt import adopt_existing
from .changes import RawChanges, field_changes
from .compile import CompiledEntity, ReferenceValue
from .errors import RowError
from .ids import destination_uuid, encode_key
from .ports import (
    DEFAULT_BATCH_SIZE,
    DELETE,
    UPSERT,
    BatchResult,
    Change,
    DestinationWriter,
    FaultHook,
    ProgressSink,
    RecordOutcome,
    RunPorts,
    SourceReader,
    StopRequest,
)
from .stages import StageSeconds, clock
from .validation import CompiledRule, batch_unique_violations, unique_rules, validate_row

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

Candidate = tuple[Change, uuid.UUID, dict[str, Any]]


@dataclass
class UnitOutcome:
    """How a unit of work ended: ``done``, ``paused``, ``cancelled`` or ``slice`` (more to do)."""

    status: str
    last_change_id: int
    batches: int = 0
    processed: int = 0
    failed: int = 0
    skipped: int = 0


def stop_status(
    signal: StopRequest, outcome: UnitOutcome, *, max_batches: int | None
) -> str | None:
    """The status a batch loop stops with before its next batch: the operator's request
    (``paused``/``cancelled``), ``slice`` once ``max_batches`` are done, else None."""
    if signal.stopped_as is not None:
        return signal.stopped_as
    if max_batches is not None and outcome.batches >= max_batches:
        return "slice"
    return None


Batch = TypeVar("Batch")


def read_batches(
    outcome: UnitOutcome,
    *,
    stop_requested: Callable[[], StopRequest],
    read: Callable[[int], Sequence[Batch]],
    max_batches: int | None,
) -> Iterator[tuple[Sequence[Batch], float, StageSeconds]]:
    """The head of every batch loop: before each batch, stop as asked (``outcome.status``);
    else read the batch after ``outcome.last_change_id`` (timed as the read stage) and yield
    it with its start time and its stage timer, until none is left."""
    while True:
        stopped = stop_status(stop_requested(), outcome, max_batches=max_batches)
        if stopped:
            outcome.status = stopped
            return
        started = clock()
        stages = StageSeconds()
        with stages.measure("read"):
            batch = read(outcome.last_change_id)
        if not batch:
            return
        yield batch, started, stages


@dataclass
class EntityRunner:
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

    @property
    def entity(self) -> str:
        return self.compiled.spec.name

    def run(self, *, phase: str, after_id: int, max_batches: int | None = None) -> UnitOutcome:
        outcome = UnitOutcome(status="done", last_change_id=after_id)
        for changes, started, stages in read_batches(
            outcome,
            stop_requested=self.ports.stop_requested,
            read=lambda after: self.ports.read_changes(
                after_id=after, phase=phase, limit=self.batch_size
            ),
            max_batches=max_batches,
        ):
            if phase == UPSERT:
                outcomes = self._upsert_batch(changes, stages)
            else:
                outcomes = self._delete_batch(changes, stages)
            result = BatchResult(
                entity=self.entity,
                phase=phase,
                last_change_id=changes[-1].id,
                outcomes=outcomes,
                seconds=clock() - started,
                dry_run=self.dry_run,
                stages=stages,
                started=started,
            )
            self._fault("after_destination_commit")
            self.ports.commit_batch(result)
            self._fault("after_control_commit")
            if self.progress is not None:
                self.progress.batch_committed(result)
            outcome.last_change_id = result.last_change_id
            outcome.batches += 1
            outcome.processed += result.processed
            outcome.failed += result.failed
            outcome.skipped += result.skipped
        return outcome

    # -- upserts -----------------------------------------------------------------------------

    def _upsert_batch(self, changes: Sequence[Change], stages: StageSeconds) -> list[RecordOutcome]:
        spec = self.compiled.spec
        with stages.measure("read"):
            fetched = self.source.fetch_rows(
                spec.source_table,
                spec.source_key,
                [tuple(c.key) for c in changes],
                self.compiled.source_columns,
            )
            rows_by_text = {encode_key(list(key)): row for key, row in fetched.items()}
            known = self.ports.lookup_uuids(
                self.entity, [c.key_text for c in changes], include_deleted=True
            )
        outcomes: dict[str, RecordOutcome] = {}
        transformed: list[Candidate] = []
        with stages.measure("transform"):
            present: list[tuple[Change, uuid.UUID]] = []
            for change in changes:
                record_uuid = known.get(change.key_text) or destination_uuid(
                    self.entity, change.key_text
                )
                if change.key_text not in rows_by_text:
                    # Gone from the source since the analysis: the next analysis sees the delete.
                    outcomes[change.key_text] = self._outcome(
                        change,
                        "skipped",
                        record_uuid,
                        RowError("gone from the source since the analysis", rule="source"),
                    )
                    continue
                present.append((change, record_uuid))
            # The whole batch at once: fields with a column form run vectorized (compile.py).
            results = self.compiled.transform_batch([rows_by_text[c.key_text] for c, _ in present])
            for (change, record_uuid), values in zip(present, results, strict=True):
                if isinstance(values, RowError):
                    outcomes[change.key_text] = self._outcome(change, "failed", record_uuid, values)
                else:
                    transformed.append((change, record_uuid, values))

        links: dict[str, dict[str, str]] = {}
        with stages.measure("validate"):
            candidates = self._validate(transformed, outcomes)
            candidates = self._resolve_references(candidates, outcomes, links)
            # Adoption before the unique check: an adopted row's values are its own, not a clash.
            candidates, adopted = self._adopt(candidates, known, outcomes)
            candidates = self._check_unique(candidates, outcomes)

        rows = [{self.compiled.spec.destination_key: u, **values} for _, u, values in candidates]
        refused: dict[uuid.UUID, RowError] = {}
        changed: dict[uuid.UUID, RawChanges] = {}
        if not self.dry_run:
            with stages.measure("write"):
                refused = self.writer.upsert(
                    rows, self.compiled.destination_columns, changes=changed
                )
        for change, record_uuid, _ in candidates:
            if record_uuid in refused:
                error = refused[record_uuid]  # the database's reason, and column when named
                outcomes[change.key_text] = self._outcome(change, "failed", record_uuid, error)
            else:
                note = adopted.get(change.key_text, "")
                action = "updated" if change.key_text in known or note else "created"
                outcome = self._outcome(change, action, record_uuid)
                outcome.note = note
                outcome.links = links.get(change.key_text)
                if action == "updated" and record_uuid in changed:
                    # A `reference: self` column held back for the second pass was written
                    # NULL for now: its value before is not what this run changes it to.
                    held = outcome.links or {}
                    found = changed[record_uuid]
                    outcome.changes = field_changes(
                        {c: v for c, v in found.items() if c not in held}
                    )
                outcomes[change.key_text] = outcome
        return [outcomes[c.key_text] for c in changes]

    def _validate(
        self, candidates: list[Candidate], outcomes: dict[str, RecordOutcome]
    ) -> list[Candidate]:
        """The rules of each row (all but `unique`, which needs the whole batch)."""
        if not self.rules:
            return candidates
        kept = []
        for change, record_uuid, values in candidates:
            error = validate_row(self.rules, values, today=self.today)
            if error:
                outcomes[change.key_text] = self._outcome(change, "failed", record_uuid, error)
            else:
                kept.append((change, record_uuid, values))
        return kept

    def _resolve_references(
        self,
        candidates: list[Candidate],
        outcomes: dict[str, RecordOutcome],
        links: dict[str, dict[str, str]],
    ) -> list[Candidate]:
        """Parents' legacy keys -> their UUIDs; `reference: self` parents that this run has
        yet to write are left NULL and kept in ``links`` for the second pass (selfref.py)."""
        if not self.compiled.reference_fields:
            return candidates
        wanted: dict[str, set[str]] = {}
        for _, _, values in candidates:
            for column in self.compiled.reference_fields:
                ref = values.get(column)
                if isinstance(ref, ReferenceValue):
                    wanted.setdefault(ref.entity, set()).add(ref.key_text)
        resolved = {
            parent: self.ports.lookup_uuids(parent, keys, include_deleted=False)
            for parent, keys in wanted.items()
        }
        # reference: self — a parent not migrated yet but coming in this run (in this batch,
        # a later one, or a cycle) is linked after all upserts; any other fails the row.
        unresolved = wanted.get(self.entity, set()) - set(resolved.get(self.entity, {}))
        coming = self.ports.in_change_set(unresolved) if unresolved else set()
        kept = []
        for change, record_uuid, values in candidates:
            try:
                for column, parent in self.compiled.reference_fields.items():
                    ref = values.get(column)
                    if not isinstance(ref, ReferenceValue):
                        continue
                    parent_uuid = resolved.get(ref.entity, {}).get(ref.key_text)
                    if parent_uuid is None and ref.entity == self.entity and ref.key_text in coming:
                        links.setdefault(change.key_text, {})[column] = ref.key_text
                        values[column] = None
                        continue
                    if parent_uuid is None:
                        raise RowError(
                            f"missing parent: {parent} {ref.key_text!r} has not been migrated",
                            field=column,
                            rule="reference",
                            value=ref.key_text,
                        )
                    values[column] = parent_uuid
            except RowError as error:
                outcomes[change.key_text] = self._outcome(change, "failed", record_uuid, error)
                continue
            kept.append((change, record_uuid, values))
        return kept

    def _adopt(
        self,
        candidates: list[Candidate],
        known: Collection[str],
        outcomes: dict[str, RecordOutcome],
    ) -> tuple[list[Candidate], dict[str, str]]:
        """New records take the UUID of a destination row that matches on ``match_on``."""
        match_on = self.compiled.spec.match_on
        fresh = [(c.key_text, u, v) for c, u, v in candidates if c.key_text not in known]
        if not match_on or not fresh:
            return candidates, {}
        adoption = adopt_existing(
            entity=self.entity,
            match_on=match_on,
            writer=self.writer,
            ports=self.ports,
            candidates=fresh,
        )
        kept = []
        for change, record_uuid, values in candidates:
            error = adoption.errors.get(change.key_text)
            if error is not None:
                outcomes[change.key_text] = self._outcome(change, "failed", record_uuid, error)
                continue
            kept.append((change, adoption.uuids.get(change.key_text, record_uuid), values))
        return kept, adoption.notes

    def _check_unique(
        self,
        candidates: list[Candidate],
        outcomes: dict[str, RecordOutcome],
    ) -> list[Candidate]:
        rules = unique_rules(self.rules)
        if not rules:
            return candidates
        in_batch = batch_unique_violations(rules, [(c.key_text, v) for c, _, v in candidates])
        kept = []
        owners = {
            rule.field: self.writer.owners_of_values(
                rule.field, [v.get(rule.field) for _, _, v in candidates]
            )
            for rule in rules
        }
        for change, record_uuid, values in candidates:
            error = in_batch.get(change.key_text)
            if error is None:
                for rule in rules:
                    value = values.get(rule.field)
                    owner = owners[rule.field].get(value)
                    if value is not None and owner is not None and owner != record_uuid:
                        error = RowError(
                            f"unique: {value!r} is already used by another destination record",
                            field=rule.field,
                            rule="unique",
                            value=value,
                        )
                        break
            if error:
                outcomes[change.key_text] = self._outcome(change, "failed", record_uuid, error)
            else:
                kept.append((change, record_uuid, values))
        return kept

    # -- deletes -----------------------------------------------------------------------------

    def _delete_batch(self, changes: Sequence[Change], stages: StageSeconds) -> list[RecordOutcome]:
        spec = self.compiled.spec
        with stages.measure("read"):
            known = self.ports.lookup_uuids(
                self.entity, [c.key_text for c in changes], include_deleted=False
            )
        if spec.deletes == "report":
            return [self._outcome(c, "skipped", known.get(c.key_text)) for c in changes]
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
                outcomes.append(self._outcome(change, "skipped", None))
            elif record_uuid in refused:
                error = RowError(refused[record_uuid], rule="delete")
                outcomes.append(self._outcome(change, "failed", record_uuid, error))
            else:
                outcomes.append(self._outcome(change, "deleted", record_uuid))
        return outcomes

    # -- helpers -----------------------------------------------------------------------------

    def _outcome(
        self,
        change: Change,
        action: str,
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

    def _fault(self, point: str) -> None:
        if self.fault:
            self.fault(point)
