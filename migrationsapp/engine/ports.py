"""The engine's boundary: the ports the runner is handed, and the values that cross them.

The batch loop (``engine.runner``, and the second pass of ``reference: self`` in
``engine.selfref``) depends on these Protocols only, never on a database class:

* ``SourceReader``: the source rows of a batch's keys (``connectors.Database``);
* ``DestinationWriter``: idempotent writes keyed by destination UUID, and the few reads the
  checks need (``load.TableWriter``);
* ``ChangeSetReader``: the entity's change set, by ascending change id (a ``ChangeBatch``
  when the rows came with the changes, as columns);
* ``RecordMapLookup``: legacy key ↔ destination UUID;
* ``CheckpointStore``: the batch's control commit (record map, events, quarantine,
  checkpoint, counters, stage seconds), atomic;
* ``ControlSignal``: whether an operator asked to stop, as a ``StopRequest``;
* ``ProgressSink``: told of every committed batch (progress bars).

``services.run_ports.EntityRunPorts`` implements the control database's four in one object
(``RunPorts``); ``tests/unit/fakes.py`` has in-memory versions of every port, on which the
runner's unit tests run without a database.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .changes import FieldChanges, RawChanges
from .errors import RowError
from .outcomes import WRITTEN_ACTIONS, Phase, RecordAction, StopRequest
from .row_columns import RowColumns
from .stages import StageSeconds, clock, close_control

# The phases of an entity's run, as the change-set reader and the checkpoints name them.
# Changes per batch: the default, and the most one batch may hold (its rows, their record map
# entries and events are held in memory at once).
DEFAULT_BATCH_SIZE = 1000
MAX_BATCH_SIZE = 100_000

# The phases as plain names, for the modules that compare a checkpoint's phase with them.
UPSERT = Phase.UPSERT
DELETE = Phase.DELETE
LINK = Phase.LINK

Row = Mapping[str, Any]
FaultHook = Callable[[str], None]
"""Called at named points of the loop ("after_destination_commit", "after_control_commit");
tests inject crashes there."""


# -- values --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One key of the change set: for a first baseline read by key range
    (``engine.reads_key_range``), one source row, whose ``id`` is its place in the read."""

    id: int
    kind: str  # new | modified | retry | deleted
    key: list[Any]
    key_text: str
    content_hash: str


class ChangeBatch(list[Change]):
    """Changes read with their source rows: ``source`` holds the rows' columns, in the order
    of the changes (a first baseline read by key range). The runner fetches the rows of any
    other batch of changes by key."""

    def __init__(self, changes: Iterable[Change], source: RowColumns) -> None:
        super().__init__(changes)
        if len(self) != len(source):
            raise ValueError("one source row per change")
        self.source = source


@dataclass
class RecordOutcome:
    key_text: str
    key: list[Any]
    action: RecordAction
    uuid: uuid.UUID | None
    content_hash: str
    error: RowError | None = None
    # Why a written record was written the way it was (adopted by match_on), for its event.
    note: str = ""
    # `reference: self` columns written NULL, to be set by the second pass (selfref.py):
    # destination column -> the parent's legacy key text.
    links: dict[str, str] | None = None
    change_id: int | None = None
    # An update's changed destination fields, {field: [before, after]} (engine.changes);
    # empty when the row was rewritten unchanged, None when not known (not an update).
    changes: FieldChanges | None = None

    @property
    def reason(self) -> str:
        """What the record event says: the error, else the note (e.g. an adoption)."""
        return str(self.error) if self.error else self.note


@dataclass
class BatchResult:
    entity: str
    phase: Phase
    last_change_id: int
    outcomes: list[RecordOutcome]
    # From the batch's read to the end of its destination write (the control commit follows).
    seconds: float
    dry_run: bool = False
    # The runner's four stages; the checkpoint store adds ``control`` (engine.stages).
    stages: StageSeconds = field(default_factory=StageSeconds)
    # When the batch's read began (engine.stages.clock), for its wall time.
    started: float = field(default_factory=clock)

    def count(self, *actions: RecordAction) -> int:
        return sum(1 for o in self.outcomes if o.action in actions)

    @property
    def processed(self) -> int:
        return self.count(*WRITTEN_ACTIONS)

    @property
    def failed(self) -> int:
        return self.count(RecordAction.FAILED)

    @property
    def skipped(self) -> int:
        return self.count(RecordAction.SKIPPED)

    def close_control(self, *, commit_began: float) -> float:
        """For the checkpoint store, just before it records the stages: sets ``control`` to
        the time since ``commit_began`` and returns the batch's wall seconds."""
        return close_control(self.stages, batch_started=self.started, commit_began=commit_began)


@dataclass(frozen=True)
class PendingLink:
    """A row written with self-references NULL, and the parents they are to point at."""

    change_id: int
    key: list[Any]
    key_text: str
    content_hash: str
    uuid: uuid.UUID
    columns: dict[str, str]  # destination column -> the parent's legacy key text


@dataclass
class LinkBatchResult:
    entity: str
    last_change_id: int
    linked: int
    failures: list[RecordOutcome]
    seconds: float
    phase: Phase = Phase.LINK
    stages: StageSeconds = field(default_factory=StageSeconds)
    started: float = field(default_factory=clock)

    # What the batch loop counts (engine.batch_loop): the rows linked here were counted
    # processed by their upsert batch, so the second pass adds only its failures.
    processed = 0
    skipped = 0

    @property
    def failed(self) -> int:
        return len(self.failures)

    def close_control(self, *, commit_began: float) -> float:
        """As ``BatchResult.close_control``."""
        return close_control(self.stages, batch_started=self.started, commit_began=commit_began)


# -- ports ---------------------------------------------------------------------------------------


class SourceReader(Protocol):
    def fetch_rows(
        self,
        table: str,
        key_columns: Sequence[str],
        keys: Sequence[tuple],
        columns: Sequence[str],
    ) -> dict[tuple, dict[str, Any]]:
        """The rows whose key matches one of ``keys`` exactly, keyed by the key as stored;
        a key with no row is absent (gone from the source since the analysis)."""


class DestinationWriter(Protocol):
    """One destination table. Every call commits on its own: the destination commits first,
    the control commit second (a crash in between replays the batch, which writes the same
    rows). Refusals come back per row, never as an exception; a lost connection raises."""

    key_column: str

    def upsert_columns(
        self,
        batch: RowColumns,
        *,
        changes: dict[uuid.UUID, RawChanges] | None = None,
        fresh: bool = False,
    ) -> dict[uuid.UUID, RowError]:
        """Insert or update the rows of ``batch`` (its first column the key column); the rows
        the database refused, by UUID, each with its reason (rule ``destination``).
        ``changes``, when given, is filled with each written row that existed before: its
        columns whose value differs from the one written, as (before, after); empty when none
        does. ``fresh``: the rows are believed new (a hint: a row there already is updated
        all the same)."""

    def owners_of_values(self, column: str, values: Iterable[Any]) -> dict[Any, uuid.UUID]:
        """For a `unique` rule: which destination row holds each value now."""

    def rows_matching(
        self, columns: Sequence[str], values: Iterable[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], list[uuid.UUID]]:
        """For ``match_on``: the rows whose ``columns`` equal each tuple, exactly."""

    def delete(self, uuids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Hard-delete rows; the ones the destination still references, with the reason."""

    def soft_delete(
        self, uuids: Sequence[uuid.UUID], column: str, when: dt.datetime
    ) -> dict[uuid.UUID, str]:
        """Set ``column`` (kept when already set); refusals with the reason."""

    def update_columns(self, rows: Sequence[Row], columns: Sequence[str]) -> dict[uuid.UUID, str]:
        """Set ``columns`` of existing rows; refusals with the reason."""

    def clear_columns(
        self, uuids: Sequence[uuid.UUID], columns: Sequence[str]
    ) -> dict[uuid.UUID, str]:
        """Set ``columns`` to NULL on these rows; refusals with the reason."""


class ChangeSetReader(Protocol):
    def read_changes(self, *, after_id: int, phase: Phase, limit: int) -> list[Change]:
        """The next changes of this entity's change set for ``phase``, by ascending id."""

    def in_change_set(self, key_texts: Collection[str]) -> set[str]:
        """Which keys this run will upsert (asked only for `reference: self` parents)."""


class RecordMapLookup(Protocol):
    def lookup_uuids(
        self, entity: str, key_texts: Collection[str], *, include_deleted: bool
    ) -> dict[str, uuid.UUID]:
        """Destination UUIDs of legacy keys (absent: never migrated, or deleted)."""

    def keys_of_uuids(self, entity: str, uuids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The legacy key that owns each UUID (deleted records included)."""


class CheckpointStore(Protocol):
    def commit_batch(self, result: BatchResult) -> None:
        """Record the batch atomically: record map, events, quarantine, checkpoint, counters,
        and its stage seconds — ``result.close_control`` called just before they are
        recorded, in the same transaction. Raises ``LeaseLostError`` (writing nothing) when
        another copy of the unit holds its lease."""


class ControlSignal(Protocol):
    def stop_requested(self) -> StopRequest:
        """Asked between batches."""


class ProgressSink(Protocol):
    def batch_committed(self, result: BatchResult) -> None:
        """After each batch's control commit."""


class RunPorts(ChangeSetReader, RecordMapLookup, CheckpointStore, ControlSignal, Protocol):
    """The control database's side of a run, in one object."""


class LinkStore(Protocol):
    def read_links(self, *, after_id: int, limit: int) -> list[PendingLink]:
        """The next kept links of this entity's change set, by ascending change id."""

    def commit_links(self, result: LinkBatchResult) -> None:
        """Record the batch's failures, checkpoint and stage seconds atomically (as
        ``CheckpointStore.commit_batch``)."""


class LinkPorts(LinkStore, RecordMapLookup, ControlSignal, Protocol):
    """What the second pass of `reference: self` is handed besides its writer."""
