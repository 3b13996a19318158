"""In-memory versions of every port of the engine (engine/ports.py), for unit tests of the
runner without a database.

They keep the real ports' promises, not their storage: the destination writes rows keyed by
UUID and refuses per row (a value it cannot hold, a row another table still points at); the
control side reads the change set by ascending id, keeps the record map, and records each
batch (map, events, quarantine, checkpoint, stage totals) at once or not at all.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from migrationsapp.engine.errors import LeaseLostError, RowError
from migrationsapp.engine.ids import encode_key
from migrationsapp.engine.outcomes import Phase, RecordAction
from migrationsapp.engine.ports import (
    DELETE,
    LINK,
    UPSERT,
    BatchResult,
    Change,
    ChangeBatch,
    LinkBatchResult,
    PendingLink,
    StopRequest,
)
from migrationsapp.engine.row_columns import RowColumns
from migrationsapp.engine.stages import StageTotals, clock

# -- the source --------------------------------------------------------------------------------


class MemorySource:
    """A SourceReader over tables held as lists of rows."""

    def __init__(self, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        self.tables = {name: [dict(row) for row in rows] for name, rows in tables.items()}
        self.fetches = 0

    def fetch_rows(
        self,
        table: str,
        key_columns: Sequence[str],
        keys: Sequence[tuple],
        columns: Sequence[str],
    ) -> dict[tuple, dict[str, Any]]:
        self.fetches += 1
        wanted = set(keys)
        found = {}
        for row in self.tables[table]:
            key = tuple(row[c] for c in key_columns)
            if key in wanted:
                found[key] = {c: row.get(c) for c in columns}
        return found

    def remove(self, table: str, key: Any) -> None:
        """The row leaves the source (after the analysis)."""
        self.tables[table] = [r for r in self.tables[table] if r["id"] != key]


# -- the destination ---------------------------------------------------------------------------


class MemoryTable:
    """A DestinationWriter over one table held in a dict by UUID.

    ``refuse`` holds values the table cannot take (column, value) → the database's reason;
    ``children`` lists (table, column) pairs whose rows point at this table's rows, so that a
    delete of a row still pointed at is refused, as a foreign key would.
    """

    def __init__(self, name: str, key_column: str = "id") -> None:
        self.name = name
        self.key_column = key_column
        self.rows: dict[uuid.UUID, dict[str, Any]] = {}
        self.refuse: dict[tuple[str, Any], str] = {}
        self.children: list[tuple[MemoryTable, str]] = []
        self.writes: list[str] = []  # every writing call, by name: a dry run makes none

    # -- writes ----------------------------------------------------------------------------

    def upsert_columns(
        self,
        batch: RowColumns,
        *,
        changes: dict[uuid.UUID, Mapping[str, tuple[Any, Any]]] | None = None,
        fresh: bool = False,
    ) -> dict[uuid.UUID, RowError]:
        self.writes.append("upsert")
        failures: dict[uuid.UUID, RowError] = {}
        columns = batch.names[1:]
        for row in map(batch.row, range(len(batch))):
            key = row[self.key_column]
            bad = next((c for c in columns if (c, row.get(c)) in self.refuse), None)
            if bad is not None:
                reason = self.refuse[(bad, row.get(bad))]
                failures[key] = RowError(
                    f"destination refused the row: {reason}",
                    field=bad,
                    rule="destination",
                    value=row.get(bad),
                )
                continue
            if changes is not None and key in self.rows:
                before = self.rows[key]
                changes[key] = {
                    c: (before.get(c), row.get(c)) for c in columns if before.get(c) != row.get(c)
                }
            self.rows[key] = {self.key_column: key, **{c: row.get(c) for c in columns}}
        return failures

    def delete(self, uuids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        self.writes.append("delete")
        going = set(uuids)
        refused = {u: reason for u in going if (reason := self._pointed_at(u, going))}
        for u in going - set(refused):
            self.rows.pop(u, None)
        return refused

    def soft_delete(
        self, uuids: Sequence[uuid.UUID], column: str, when: dt.datetime
    ) -> dict[uuid.UUID, str]:
        self.writes.append("soft_delete")
        for u in uuids:
            if u in self.rows and self.rows[u].get(column) is None:
                self.rows[u][column] = when
        return {}

    def update_columns(
        self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
    ) -> dict[uuid.UUID, str]:
        self.writes.append("update_columns")
        for row in rows:
            self.rows[row[self.key_column]].update({c: row[c] for c in columns})
        return {}

    def clear_columns(
        self, uuids: Sequence[uuid.UUID], columns: Sequence[str]
    ) -> dict[uuid.UUID, str]:
        self.writes.append("clear_columns")
        for u in uuids:
            if u in self.rows:
                self.rows[u].update(dict.fromkeys(columns))
        return {}

    # -- reads -----------------------------------------------------------------------------

    def owners_of_values(self, column: str, values: Iterable[Any]) -> dict[Any, uuid.UUID]:
        wanted = {v for v in values if v is not None}
        return {row[column]: key for key, row in self.rows.items() if row.get(column) in wanted}

    def rows_matching(
        self, columns: Sequence[str], values: Iterable[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], list[uuid.UUID]]:
        found: dict[tuple[Any, ...], list[uuid.UUID]] = {}
        for wanted in values:
            for key, row in self.rows.items():
                if tuple(row.get(c) for c in columns) == wanted:
                    found.setdefault(wanted, []).append(key)
        return found

    def _pointed_at(self, target: uuid.UUID, going: set[uuid.UUID]) -> str:
        for child, column in self.children:
            for key, row in child.rows.items():
                if row.get(column) == target and not (child is self and key in going):
                    return (
                        f'destination refused the row: update or delete on table "{self.name}" '
                        f'violates foreign key constraint on table "{child.name}"'
                    )
        return ""


# -- the control side --------------------------------------------------------------------------


@dataclass
class MapEntry:
    uuid: uuid.UUID
    content_hash: str = ""
    deleted: bool = False


@dataclass
class Event:
    key_text: str
    action: RecordAction
    uuid: uuid.UUID | None
    reason: str


@dataclass
class MemoryControl:
    """The control database's ports (RunPorts and LinkPorts) for one entity's run.

    ``record_map`` is shared between the controls of a session's entities (entity → key text →
    entry), as the one record-map table is. ``stop_after`` makes ``stop_requested`` answer a
    request once that many batches are committed, as an operator's click between batches.
    """

    entity: str
    changes: list[Change] = field(default_factory=list)
    record_map: dict[str, dict[str, MapEntry]] = field(default_factory=dict)
    stop: StopRequest = StopRequest.NONE
    stop_after: int | None = None
    lease_lost: bool = False
    committed: list[BatchResult] = field(default_factory=list)
    committed_links: list[LinkBatchResult] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    quarantine: dict[str, RowError | None] = field(default_factory=dict)
    checkpoints: dict[str, int] = field(default_factory=dict)
    timing: dict[str, StageTotals] = field(default_factory=dict)
    links: dict[int, PendingLink] = field(default_factory=dict)
    stop_checks: int = 0
    # Source rows read with their changes (a baseline by key range), by change id.
    rows_read: dict[int, Mapping[str, Any]] = field(default_factory=dict)

    # -- building the change set -----------------------------------------------------------

    def add_change(
        self,
        kind: str,
        *key: Any,
        content_hash: str = "h",
        row: Mapping[str, Any] | None = None,
    ) -> Change:
        """A change of the change set; with ``row``, one read with its source row (a
        baseline by key range)."""
        change = Change(
            id=len(self.changes) + 1,
            kind=kind,
            key=list(key),
            key_text=encode_key(list(key)),
            content_hash=content_hash,
        )
        self.changes.append(change)
        if row is not None:
            self.rows_read[change.id] = row
        return change

    def migrated(self, entity: str, key_text: str, record_uuid: uuid.UUID) -> None:
        self.record_map.setdefault(entity, {})[key_text] = MapEntry(record_uuid, "old")

    # -- ChangeSetReader -------------------------------------------------------------------

    def read_changes(self, *, after_id: int, phase: Phase, limit: int) -> list[Change]:
        wanted = ("deleted",) if phase == DELETE else ("new", "modified", "retry")
        batch = [c for c in self.changes if c.id > after_id and c.kind in wanted][:limit]
        if batch and all(c.id in self.rows_read for c in batch):
            rows = [self.rows_read[c.id] for c in batch]
            return ChangeBatch(batch, RowColumns.of_rows(rows, list(rows[0])))
        return batch

    def in_change_set(self, key_texts: Collection[str]) -> set[str]:
        upserts = {c.key_text for c in self.changes if c.kind != "deleted"}
        return upserts & set(key_texts)

    # -- RecordMapLookup -------------------------------------------------------------------

    def lookup_uuids(
        self, entity: str, key_texts: Collection[str], *, include_deleted: bool
    ) -> dict[str, uuid.UUID]:
        entries = self.record_map.get(entity, {})
        return {
            k: entries[k].uuid
            for k in key_texts
            if k in entries and (include_deleted or not entries[k].deleted)
        }

    def keys_of_uuids(self, entity: str, uuids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
        wanted = set(uuids)
        return {e.uuid: k for k, e in self.record_map.get(entity, {}).items() if e.uuid in wanted}

    def live_uuids(self, entity: str, key_texts: Collection[str]) -> dict[str, uuid.UUID]:
        """As ``VerifyPorts.live_uuids`` (verify and the mapping preview resolve references
        with it): the live entries only."""
        return self.lookup_uuids(entity, key_texts, include_deleted=False)

    # -- ControlSignal ---------------------------------------------------------------------

    def stop_requested(self) -> StopRequest:
        self.stop_checks += 1
        if self.stop_after is not None and len(self.committed) < self.stop_after:
            return StopRequest.NONE
        return self.stop

    # -- CheckpointStore -------------------------------------------------------------------

    def commit_batch(self, result: BatchResult) -> None:
        began = clock()
        if self.lease_lost:
            raise LeaseLostError(f"entity {self.entity!r}: another worker holds the lease")
        # Everything below is one "transaction": nothing in it can fail half-way.
        if not result.dry_run:
            entries = self.record_map.setdefault(self.entity, {})
            for o in result.outcomes:
                if o.action in (RecordAction.CREATED, RecordAction.UPDATED):
                    entries[o.key_text] = MapEntry(o.uuid, o.content_hash)
                    self.quarantine.pop(o.key_text, None)
                    if o.links and o.change_id is not None:
                        self.links[o.change_id] = PendingLink(
                            o.change_id, o.key, o.key_text, o.content_hash, o.uuid, dict(o.links)
                        )
                elif o.action == RecordAction.DELETED:
                    entries[o.key_text].deleted = True
                    self.quarantine.pop(o.key_text, None)
                elif o.action == RecordAction.FAILED:
                    self.quarantine[o.key_text] = o.error
                self.events.append(Event(o.key_text, o.action, o.uuid, o.reason))
        self.checkpoints[result.phase] = result.last_change_id
        seconds = result.close_control(commit_began=began)
        self.timing.setdefault(result.phase, StageTotals()).add_batch(result.stages, seconds)
        self.committed.append(result)

    # -- LinkStore -------------------------------------------------------------------------

    def read_links(self, *, after_id: int, limit: int) -> list[PendingLink]:
        return [self.links[i] for i in sorted(self.links) if i > after_id][:limit]

    def commit_links(self, result: LinkBatchResult) -> None:
        began = clock()
        for failure in result.failures:
            self.quarantine[failure.key_text] = failure.error
            self.events.append(
                Event(failure.key_text, RecordAction.FAILED, failure.uuid, failure.reason)
            )
        self.checkpoints[LINK] = result.last_change_id
        seconds = result.close_control(commit_began=began)
        self.timing.setdefault(LINK, StageTotals()).add_batch(result.stages, seconds)
        self.committed_links.append(result)

    # -- what tests read -------------------------------------------------------------------

    def actions(self) -> dict[str, RecordAction]:
        """Key text → the last action recorded for it."""
        return {e.key_text: e.action for e in self.events}

    def position(self, phase: Phase = UPSERT) -> int:
        return self.checkpoints.get(phase, 0)


# -- the progress sink and the fault hook ------------------------------------------------------


@dataclass
class RecordingProgress:
    """A ProgressSink that keeps what it was told."""

    batches: list[tuple[str, str, int]] = field(default_factory=list)

    def batch_committed(self, result: BatchResult) -> None:
        self.batches.append((result.entity, result.phase, len(result.outcomes)))


class Crash(Exception):
    """A process killed at a fault point (in a test)."""


@dataclass
class CrashAt:
    """A fault hook that crashes at ``point`` the ``nth`` time it is reached, once."""

    point: str
    nth: int = 1
    seen: int = 0
    crashed: bool = False

    def __call__(self, point: str) -> None:
        if point != self.point or self.crashed:
            return
        self.seen += 1
        if self.seen == self.nth:
            self.crashed = True
            raise Crash(point)
