"""New / modified / deleted detection by content hash (``detection: hash``).

The source's keys and content hashes are streamed from one consistent snapshot into a
``ChangeSetStore`` (in practice a temporary table of the control database), which compares
them set-wise with the record map and writes the change set. Python holds one batch at a
time, so memory does not grow with the table. The delete guard is checked here, before
anything is written to the destination.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .connectors import Database
from .errors import DeleteGuardError
from .ids import encode_key, key_forms
from .mapping import EntitySpec

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


def analyze_entity(
    *,
    source: Database,
    entity: EntitySpec,
    hashed_columns: tuple[str, ...],
    store: ChangeSetStore,
    mapping_version: int,
    baseline: bool = False,
    batch_size: int = 10_000,
    progress: ProgressCallback | None = None,
) -> AnalysisCounts:
    """Stream the source's keys and hashes into ``store`` and classify them."""
    started = time.monotonic()
    seen = 0
    null_keys: list[str] = []
    for batch in source.stream_key_hashes(
        entity.source_table, entity.source_key, hashed_columns, batch_size=batch_size
    ):
        staged = []
        for key, content_hash in batch:
            if None in key:
                # NULL is no identity (a unique index admits many): such a row cannot be
                # told apart from the next run's, so it is reported, never migrated.
                null_keys.append(describe_null_key(entity, key))
                continue
            staged.append((*key_forms(key), content_hash))
        store.add_source(staged)
        seen += len(batch)
        if progress:
            progress(seen)
    counts = store.classify(baseline=baseline, mapping_version=mapping_version)
    counts.null_keys = len(null_keys)
    counts.null_key_samples = null_keys[:NULL_KEY_SAMPLES]
    counts.seconds = time.monotonic() - started
    return counts


NULL_KEY_SAMPLES = 20


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
