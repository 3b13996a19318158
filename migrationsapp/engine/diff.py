"""New / modified / deleted detection by content hash (``detection: hash``).

The source's keys and content hashes are read in key slices (``reads_slices.py``), each from
a consistent snapshot of its own, into a ``SlicedChangeSetStore`` (in practice a table of the
control database kept for the analysis), each slice committed with a ``SliceCheckpoint``: a
read stopped half-way resumes after its last committed slice (``stage_source``). Once the last
slice is in, the store compares the whole stage set-wise with the record map and writes the
change set (``classify``). Python holds one batch at a time, so memory does not grow with the
table. The delete guard is checked here, before anything is written to the destination.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from .connectors import Database
from .errors import DeleteGuardError
from .ids import encode_key, key_forms
from .mapping import EntitySpec
from .ports import FaultHook
from .reads_slices import NULL_KEY_SAMPLES, key_hash_slice

ProgressCallback = Callable[[int], None]


@dataclass
class AnalysisCounts:
    new: int = 0
    modified: int = 0
    deleted: int = 0
    unchanged: int = 0
    retry: int = 0
    source_count: int = 0
    # Records of the entity in the record map (not deleted): the delete share's denominator.
    mapped_count: int = 0
    # Source rows with a NULL in a key column: no record can be tracked by them, so they
    # are left out of the change set and reported (their first few keys in null_key_samples).
    null_keys: int = 0
    null_key_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return self.new + self.modified + self.deleted + self.retry

    def as_dict(self) -> dict[str, int]:
        return {
            "new": self.new,
            "modified": self.modified,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "retry": self.retry,
        }


class ChangeSetStore(Protocol):
    """Where the source's key hashes go and where they are compared with the record map."""

    def add_source(self, rows: list[tuple[str, str, str]]) -> None:
        """Stage a batch of ``(key_text, key_json, content_hash)``."""

    def classify(self, *, baseline: bool, mapping_version: int) -> AnalysisCounts:
        """Compare the staged source with the record map; write and count the change set."""


@dataclass
class SliceCheckpoint:
    """Where an analysis's read of its source stands, committed with each slice."""

    slices: int = 0
    # The first key of the next slice (``reads_slices.boundary_json``); None before the
    # first slice, and after the last.
    next_start: list | None = None
    done: bool = False
    rows_seen: int = 0  # source rows read, NULL-keyed ones included (the progress)
    rows_staged: int = 0  # rows in the stage: the source's count
    null_keys: int = 0
    null_key_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0  # spent reading the committed slices, over every attempt

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SliceCheckpoint:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


class SlicedChangeSetStore(ChangeSetStore, Protocol):
    """A change-set store whose stage outlives a transaction: a slice at a time."""

    def stage_slice(
        self,
        batches: Iterable[list[tuple[str, str, str]]],
        checkpoint: Callable[[], SliceCheckpoint],
    ) -> SliceCheckpoint:
        """Stage every batch, then store ``checkpoint()`` (called once the batches are spent),
        in one transaction; return the checkpoint stored."""


def stage_source(
    *,
    source: Database,
    entity: EntitySpec,
    hashed_columns: tuple[str, ...],
    store: SlicedChangeSetStore,
    checkpoint: SliceCheckpoint,
    slice_rows: int | None,
    batch_size: int = 10_000,
    progress: ProgressCallback | None = None,
    fault: FaultHook | None = None,
) -> SliceCheckpoint:
    """Read and stage the source's key slices after ``checkpoint``, each committed with its
    own checkpoint; returns the last (``done``). ``slice_rows`` None or 0: one slice.

    ``fault`` is called with ``"after_slice_commit"`` after each slice; tests crash there.
    """
    while not checkpoint.done:
        checkpoint = _stage_slice(
            source=source,
            entity=entity,
            hashed_columns=hashed_columns,
            store=store,
            checkpoint=checkpoint,
            slice_rows=slice_rows,
            batch_size=batch_size,
            progress=progress,
        )
        if fault:
            fault("after_slice_commit")
    return checkpoint


def _stage_slice(
    *,
    source: Database,
    entity: EntitySpec,
    hashed_columns: tuple[str, ...],
    store: SlicedChangeSetStore,
    checkpoint: SliceCheckpoint,
    slice_rows: int | None,
    batch_size: int,
    progress: ProgressCallback | None,
) -> SliceCheckpoint:
    started = time.monotonic()
    first = checkpoint.slices == 0
    with key_hash_slice(
        source,
        entity.source_table,
        entity.source_key,
        hashed_columns,
        start=checkpoint.next_start,
        rows=slice_rows,
        batch_size=batch_size,
        count_null_keys=first,
    ) as piece:
        # NULL is no identity (a unique index admits many): such a row cannot be told
        # apart from the next run's, so it is reported, never migrated.
        null_keys = checkpoint.null_keys + piece.null_keys
        samples = checkpoint.null_key_samples + [
            describe_null_key(entity, key) for key in piece.null_key_samples
        ]
        seen = checkpoint.rows_seen + piece.null_keys
        staged = checkpoint.rows_staged

        def batches() -> Iterator[list[tuple[str, str, str]]]:
            nonlocal seen, staged
            for batch in piece.batches:
                seen += len(batch)
                staged += len(batch)
                yield [(*key_forms(key), content_hash) for key, content_hash in batch]
                if progress:
                    progress(seen)

        def after() -> SliceCheckpoint:
            return SliceCheckpoint(
                slices=checkpoint.slices + 1,
                next_start=piece.next_start,
                done=piece.next_start is None,
                rows_seen=seen,
                rows_staged=staged,
                null_keys=null_keys,
                null_key_samples=samples[:NULL_KEY_SAMPLES],
                seconds=checkpoint.seconds + time.monotonic() - started,
            )

        return store.stage_slice(batches(), after)


def read_counts(counts: AnalysisCounts, read: SliceCheckpoint) -> AnalysisCounts:
    """``counts`` (the classification's) with what the read found: NULL keys, its seconds."""
    counts.null_keys = read.null_keys
    counts.null_key_samples = list(read.null_key_samples)
    counts.seconds += read.seconds
    return counts


def describe_null_key(entity: EntitySpec, key: Sequence[Any]) -> str:
    """A NULL-keyed row for people: ``code=NULL`` (``region=EU, code=NULL`` for two columns)."""
    return ", ".join(
        f"{column}={'NULL' if value is None else encode_key([value])}"
        for column, value in zip(entity.source_key, key, strict=True)
    )


def check_delete_guard(
    entity: EntitySpec, counts: AnalysisCounts, *, max_delete_share: float | None = None
) -> None:
    """Refuse a run whose deletes exceed the entity's allowed share of its migrated records."""
    if entity.deletes == "report" or not counts.deleted:
        return
    share_allowed = entity.max_delete_share if max_delete_share is None else max_delete_share
    share = counts.deleted / counts.mapped_count if counts.mapped_count else 1.0
    if share > share_allowed:
        raise DeleteGuardError(
            f"entity {entity.name!r}: the run would delete {counts.deleted} of "
            f"{counts.mapped_count} migrated records ({share:.1%}), more than the allowed "
            f"{share_allowed:.1%}; nothing was written to it",
            hint="Check the source is complete; if the deletes are real, raise max_delete_share "
            "for this run (--max-delete-share).",
        )
