"""The batch loop of one entity: read → transform → validate → write → checkpoint.

The runner knows nothing of Django, RQ or the web: it is handed its ports
(``engine.ports``: the source reader, the destination writer, the change set, the record
map, the checkpoint store with its lease, the stop signal, the progress sink). A batch's
destination writes commit first; then ``commit_batch`` records the batch in the control
database in one transaction. A crash between the two replays the batch, which writes the
same rows (same UUIDs), so nothing is duplicated.

The loop itself (stop requests, slices, the commit, the fault points) is
``engine.batch_loop``'s, shared with the second pass of ``reference: self``; this module
writes one batch. Every batch measures its stages (``engine.stages``): read, transform,
validate and write here, the control commit in the checkpoint store, which records the five
with the batch.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from .adopt import adopt_existing
from .batch_loop import UnitOutcome, run_batches
from .changes import RawChanges, field_changes
from .compile import CompiledEntity, ReferenceValue
from .errors import RowError
from .key_texts import DestinationUUIDs, key_texts
from .outcomes import Phase, RecordAction
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
from .validation import CompiledRule, batch_unique_violations, unique_rules, validate_batch

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
# The reason a candidate fails a check, or None when it passes.
Check = Callable[[Candidate], RowError | None]


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
        spec = self.compiled.spec
        with stages.measure("read"):
            fetched = self.source.fetch_rows(
                spec.source_table,
                spec.source_key,
                [tuple(c.key) for c in changes],
                self.compiled.source_columns,
            )
            rows_by_text = dict(zip(key_texts(fetched), fetched.values(), strict=True))
            known = self.ports.lookup_uuids(
                self.entity, [c.key_text for c in changes], include_deleted=True
            )
        outcomes: dict[str, RecordOutcome] = {}
        transformed: list[Candidate] = []
        with stages.measure("transform"):
            present: list[tuple[Change, uuid.UUID]] = []
            new_uuid = DestinationUUIDs(self.entity)
            for change in changes:
                record_uuid = known.get(change.key_text) or new_uuid(change.key_text)
                if change.key_text not in rows_by_text:
                    # Gone from the source since the analysis: the next analysis sees the delete.
                    outcomes[change.key_text] = self._outcome(
                        change,
                        RecordAction.SKIPPED,
                        record_uuid,
                        RowError("gone from the source since the analysis", rule="source"),
                    )
                    continue
                present.append((change, record_uuid))
            # The whole batch at once: fields with a column form run vectorized (compile.py).
            results = self.compiled.transform_batch([rows_by_text[c.key_text] for c, _ in present])
            for (change, record_uuid), values in zip(present, results, strict=True):
                if isinstance(values, RowError):
                    self._fail(outcomes, change, record_uuid, values)
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
                # The database's reason, and its column when named.
                self._fail(outcomes, change, record_uuid, refused[record_uuid])
                continue
            note = adopted.get(change.key_text, "")
            updated = change.key_text in known or bool(note)
            action = RecordAction.UPDATED if updated else RecordAction.CREATED
            outcome = self._outcome(change, action, record_uuid)
            outcome.note = note
            outcome.links = links.get(change.key_text)
            if updated and record_uuid in changed:
                # A `reference: self` column held back for the second pass was written
                # NULL for now: its value before is not what this run changes it to.
                held = outcome.links or {}
                found = changed[record_uuid]
                outcome.changes = field_changes({c: v for c, v in found.items() if c not in held})
            outcomes[change.key_text] = outcome
        return [outcomes[c.key_text] for c in changes]

    def _keep(
        self, candidates: list[Candidate], outcomes: dict[str, RecordOutcome], check: Check
    ) -> list[Candidate]:
        """The candidates that pass ``check``; each other one fails with its reason."""
        return self._passing(candidates, [check(c) for c in candidates], outcomes)

    def _passing(
        self,
        candidates: list[Candidate],
        errors: Sequence[RowError | None],
        outcomes: dict[str, RecordOutcome],
    ) -> list[Candidate]:
        """The candidates without an error; each other one fails with its error."""
        kept = []
        for candidate, error in zip(candidates, errors, strict=True):
            if error:
                change, record_uuid, _ = candidate
                self._fail(outcomes, change, record_uuid, error)
            else:
                kept.append(candidate)
        return kept

    def _validate(
        self, candidates: list[Candidate], outcomes: dict[str, RecordOutcome]
    ) -> list[Candidate]:
        """The rules of each row (all but `unique`, which needs the whole batch)."""
        if not self.rules:
            return candidates
        errors = validate_batch(self.rules, [c[2] for c in candidates], today=self.today)
        return self._passing(candidates, errors, outcomes)

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

        def resolve(candidate: Candidate) -> RowError | None:
            change, _, values = candidate
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
                    return RowError(
                        f"missing parent: {parent} {ref.key_text!r} has not been migrated",
                        field=column,
                        rule="reference",
                        value=ref.key_text,
                    )
                values[column] = parent_uuid
            return None

        return self._keep(candidates, outcomes, resolve)

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
        kept = self._keep(candidates, outcomes, lambda c: adoption.errors.get(c[0].key_text))
        return [(c, adoption.uuids.get(c.key_text, u), v) for c, u, v in kept], adoption.notes

    def _check_unique(
        self,
        candidates: list[Candidate],
        outcomes: dict[str, RecordOutcome],
    ) -> list[Candidate]:
        rules = unique_rules(self.rules)
        if not rules:
            return candidates
        in_batch = batch_unique_violations(rules, [(c.key_text, v) for c, _, v in candidates])
        owners = {
            rule.field: self.writer.owners_of_values(
                rule.field, [v.get(rule.field) for _, _, v in candidates]
            )
            for rule in rules
        }

        def unique(candidate: Candidate) -> RowError | None:
            change, record_uuid, values = candidate
            error = in_batch.get(change.key_text)
            if error is not None:
                return error
            for rule in rules:
                value = values.get(rule.field)
                owner = owners[rule.field].get(value)
                if value is not None and owner is not None and owner != record_uuid:
                    return RowError(
                        f"unique: {value!r} is already used by another destination record",
                        field=rule.field,
                        rule="unique",
                        value=value,
                    )
            return None

        return self._keep(candidates, outcomes, unique)

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
