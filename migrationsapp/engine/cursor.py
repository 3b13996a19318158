"""Timestamp-cursor detection: ``detection: timestamp`` and ``detection: hybrid``.

Hash detection reads every row of the source at every run. For a table too large for that,
timestamp detection reads only a *window*: the rows whose timestamp column is at or after
where the last completed run's analysis stopped. Its position is a ``Cursor``, the tuple
``(timestamp, key)`` of the last row that analysis saw (the maximum in ``(timestamp, key)``
order, never the wall clock), kept between runs by the services.

Which rows a window holds (``plan_window``):

* every row when there is no cursor (the first run), under ``--baseline``, or when the
  cursor was written under another mapping version (a new version makes every row
  ``modified``, so every row must be looked at);
* with an overlap (default ``DEFAULT_OVERLAP``, 5 minutes): every row whose timestamp is at
  or after ``cursor timestamp - overlap``. Rows that commit late with an earlier timestamp
  (a long transaction, clocks that disagree) and rows that share the cursor's timestamp
  are read again; those that did not change count as ``unchanged``;
* with no overlap (0) or a column that is not a date (an integer version, say): the rows
  strictly after the cursor tuple, ``(timestamp, key) > (cursor timestamp, cursor key)``.
  The key breaks ties, so rows sharing a timestamp across the cut are neither lost nor read
  twice; ties are ordered by the source's own collation, hence a positive overlap is the
  safer setting for text keys;
* always, the rows whose timestamp is NULL: such a row cannot be placed against a cursor,
  so it is hashed at every run (treating it as the epoch would hide its changes for ever);
* always, the records still in quarantine that the window missed: they are retried, as
  the contract promises, with their current hash (read by key).

The window's rows are hashed exactly as hash detection hashes them and classified against
the record map the same way: new, modified (hash or mapping version changed), unchanged
(seen in the window with the same hash: ``unchanged`` counts rows seen, not the table) and
retry. Timestamp detection reports no deletes; hybrid detection adds a key-only scan of
the whole source and reports the records of the map the source no longer has.

What each mode cannot see is said plainly (``CANNOT_SEE``) in the analysis.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from .connectors import Database
from .diff import AnalysisCounts, ChangeSetStore
from .ids import encode_key, storage_values, value_text
from .mapping import EntitySpec

DEFAULT_OVERLAP = dt.timedelta(minutes=5)
# Column kinds an overlap (a duration) can be subtracted from.
SHIFTABLE_KINDS = ("datetime", "datetime_tz", "date")

_SILENT = "silent updates (changes that do not touch the timestamp)"
CANNOT_SEE: dict[str, str] = {
    "hash": "",
    "timestamp": f"hard deletes and {_SILENT}",
    "hybrid": _SILENT,
}
SEES: dict[str, str] = {
    "hash": "inserts, updates (including silent ones) and hard deletes",
    "timestamp": "inserts and updates that touch the timestamp",
    "hybrid": "inserts and updates that touch the timestamp, and hard deletes",
}

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class Cursor:
    """A position in a table ordered by ``(timestamp, key)``, in its stored form."""

    timestamp: str  # the source value's text (ids.value_text): ISO for dates and times
    key: tuple[Any, ...]  # the key's storage values (ids.storage_values)

    @classmethod
    def at(cls, timestamp: Any, key: Sequence[Any]) -> Cursor:
        return cls(value_text(timestamp), tuple(storage_values(key)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Cursor | None:
        if not data:
            return None
        return cls(str(data["timestamp"]), tuple(data["key"]))

    @property
    def key_text(self) -> str:
        return encode_key(list(self.key))

    def as_dict(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp, "key": list(self.key), "key_text": self.key_text}


@dataclass(frozen=True)
class Window:
    """Which rows an analysis reads (besides NULL timestamps and open quarantine)."""

    since: Any = None  # None: every row
    after_key: tuple[Any, ...] | None = None  # set: the start is exclusive on the tuple
    description: str = "every row"

    @property
    def is_full_scan(self) -> bool:
        return self.since is None


def shift_back(timestamp: str, overlap: dt.timedelta, kind: str) -> str | None:
    """``timestamp - overlap`` as text of the same shape, or None when it cannot be done.

    A date column steps back whole days (any positive overlap reaches into the day before,
    where a late row of yesterday would sit). The text keeps its date/time separator so
    that SQLite, which compares the stored text, still compares like with like.
    """
    if kind not in SHIFTABLE_KINDS:
        return None
    try:
        if kind == "date":
            day = dt.date.fromisoformat(timestamp[:10])
            return (dt.datetime.combine(day, dt.time.min) - overlap).date().isoformat()
        moment = dt.datetime.fromisoformat(timestamp)
    except ValueError:
        return None  # a zero date or other legacy text: no arithmetic on it
    return (moment - overlap).isoformat(sep=" " if " " in timestamp else "T")


def plan_window(
    cursor: Cursor | None,
    *,
    column: str,
    kind: str,
    overlap: dt.timedelta,
    full_scan_reason: str | None = None,
) -> Window:
    """The window to read after ``cursor`` (see the module's docstring)."""
    if cursor is None or full_scan_reason:
        return Window(description=f"every row ({full_scan_reason or 'no cursor yet'})")
    if overlap > dt.timedelta(0):
        since = shift_back(cursor.timestamp, overlap, kind)
        if since is not None:
            return Window(
                since=since,
                description=f"{column} >= {since} (cursor {cursor.timestamp} "
                f"minus {_duration(overlap)} overlap)",
            )
    return Window(
        since=cursor.timestamp,
        after_key=cursor.key,
        description=f"({column}, key) > ({cursor.timestamp}, {cursor.key_text})",
    )


def _duration(span: dt.timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _typed_like(text: str, sample: Any) -> Any:
    """``text`` (a stored cursor timestamp) as the Python type of ``sample``."""
    if isinstance(sample, dt.datetime):
        return dt.datetime.fromisoformat(text)
    if isinstance(sample, dt.date):
        return dt.date.fromisoformat(text)
    if isinstance(sample, bool):
        raise TypeError("a boolean is no timestamp")
    if isinstance(sample, int):
        return int(text)
    if isinstance(sample, Decimal):
        return Decimal(text)
    if isinstance(sample, float):
        return float(text)
    return text


def advance(start: Cursor | None, last: tuple[Any, Sequence[Any]] | None) -> Cursor | None:
    """Where the cursor goes after a window whose last non-NULL row was ``last``.

    Never backwards in time: a window that saw nothing newer than its start (the cursor's
    own row was deleted, say) keeps the start. On a timestamp tie the last row read wins,
    because the window's order (the source's collation) is what the next window is cut by.
    """
    if last is None:
        return start
    candidate = Cursor.at(last[0], last[1])
    if start is None:
        return candidate
    try:
        if last[0] < _typed_like(start.timestamp, last[0]):
            return start
    except (TypeError, ValueError, InvalidOperation):
        pass  # not comparable (legacy text): trust the source's order
    return candidate


class WindowChangeSetStore(ChangeSetStore, Protocol):
    """A change-set store that also takes the keys of the whole source (hybrid)."""

    def add_source_keys(self, key_texts: list[str]) -> None:
        """Stage keys of the whole source: the records of the map not among them are deletes."""

    def unstaged_retry_keys(self) -> list[list[Any]]:
        """Typed keys of the entity's open quarantine that the staged rows do not hold."""

    def classify_window(
        self, *, baseline: bool, mapping_version: int, detect_deletes: bool
    ) -> AnalysisCounts:
        """Classify the staged rows; deletes only when asked (from the staged source keys)."""


@dataclass
class WindowAnalysis:
    """The outcome of one window: the counts, and where the cursor would go."""

    counts: AnalysisCounts
    window: Window
    end: Cursor | None
    window_rows: int
    retried_outside: int
    source_keys: int | None = None  # hybrid: the keys of the whole source


def analyze_window(
    *,
    source: Database,
    entity: EntitySpec,
    hashed_columns: tuple[str, ...],
    store: WindowChangeSetStore,
    mapping_version: int,
    window: Window,
    start: Cursor | None,
    baseline: bool = False,
    batch_size: int = 10_000,
    progress: ProgressCallback | None = None,
) -> WindowAnalysis:
    """Stream ``window``'s keys and hashes into ``store`` and classify them."""
    if not entity.timestamp_column:
        raise ValueError(f"entity {entity.name!r}: detection {entity.detection} needs a column")
    started = time.monotonic()
    source_keys = None
    if entity.detection == "hybrid":
        # The key scan comes first: a row inserted between the two reads is then found by
        # the window (as new), one deleted in between waits for the next run; no key is
        # ever both deleted and changed in one change set.
        source_keys = 0
        key_columns = list(entity.source_key)
        for rows in source.stream_rows(entity.source_table, key_columns, batch_size=batch_size):
            store.add_source_keys([encode_key([row[c] for c in key_columns]) for row in rows])
            source_keys += len(rows)
    last: tuple[Any, tuple] | None = None
    seen = 0
    for batch in source.stream_key_hashes_by_timestamp(
        entity.source_table,
        entity.source_key,
        hashed_columns,
        entity.timestamp_column,
        since=window.since,
        after_key=window.after_key,
        batch_size=batch_size,
    ):
        store.add_source([_staged(key, content_hash) for key, content_hash, _ in batch])
        # NULL timestamps come first, so a batch that ends on a timestamp ends on the
        # largest (timestamp, key) read so far.
        if batch and batch[-1][2] is not None:
            last = (batch[-1][2], batch[-1][0])
        seen += len(batch)
        if progress:
            progress(seen)
    retried = 0
    retry_keys = store.unstaged_retry_keys()
    for begin in range(0, len(retry_keys), batch_size):
        chunk = [tuple(k) for k in retry_keys[begin : begin + batch_size]]
        hashes = source.fetch_key_hashes(
            entity.source_table, entity.source_key, hashed_columns, chunk
        )
        store.add_source([_staged(key, content_hash) for key, content_hash in hashes.items()])
        retried += len(hashes)
    counts = store.classify_window(
        baseline=baseline,
        mapping_version=mapping_version,
        detect_deletes=entity.detection == "hybrid",
    )
    counts.seconds = time.monotonic() - started
    return WindowAnalysis(
        counts=counts,
        window=window,
        end=advance(None if window.is_full_scan else start, last),
        window_rows=seen,
        retried_outside=retried,
        source_keys=source_keys,
    )


def _staged(key: Sequence[Any], content_hash: str) -> tuple[str, str, str]:
    return encode_key(list(key)), json.dumps(storage_values(key)), content_hash
