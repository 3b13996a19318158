"""A quarantined or previously migrated record's destination state, as verify reports it.

A quarantined record is counted in ``quarantined`` and listed in ``quarantined_records``
with its destination state, so that a quarantine never hides a tampered or deleted row:
*not migrated* (no live record map entry: nothing was ever written; the source pass tells
these apart itself), *missing* (migrated, but its destination row is gone), *equal* or
*different* (with the fields) when the source still holds the content last migrated (its
content hash and mapping version are the record map's: the row must be exactly what that
content gives), *source changed* when the source changed since (the row holds the last
migrated content, which verify cannot rebuild; the change is what failed). *missing* and
*different* are mismatches.

A destination row whose soft-delete column is set (under ``deletes: soft``) is a delete
that happened. No Django here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import RowError
from .ids import encode_key
from .verify_compare import RowComparer
from .verify_report import (
    Q_DIFFERENT,
    Q_EQUAL,
    Q_MISSING,
    SOURCE_CHANGED,
    MapEntry,
    QuarantinedState,
)
from .verify_state import VerifyContext


def at_last_migrated(
    context: VerifyContext,
    texts: list[str],
    rows: list[dict[str, Any]],
    quarantined: Mapping[str, str],
    entries: Mapping[str, MapEntry],
) -> set[str]:
    """The quarantined, migrated records whose source holds the content last migrated:
    its content hash and mapping version are those of the record map (one hash read of
    the source per batch, for these keys only)."""
    if not quarantined:
        return set()
    spec = context.compiled.spec
    wanted = []
    for text, row in zip(texts, rows, strict=True):
        entry = entries.get(text)
        if (
            text in quarantined
            and entry is not None
            and not entry.deleted
            and entry.content_hash
            and entry.mapping_version == context.mapping_version
        ):
            wanted.append((text, tuple(row[c] for c in spec.source_key)))
    if not wanted:
        return set()
    hashes = context.source.fetch_key_hashes(
        spec.source_table, spec.source_key, context.compiled.hashed_columns, [k for _, k in wanted]
    )
    by_text = {encode_key(list(key)): content_hash for key, content_hash in hashes.items()}
    return {text for text, _ in wanted if by_text.get(text) == entries[text].content_hash}


def quarantined_state(
    comparer: RowComparer,
    key_text: str,
    reason: str,
    values: dict[str, Any] | RowError,
    row: tuple[Any, ...] | None,
    unchanged: set[str],
) -> QuarantinedState:
    """What the destination row of a quarantined, migrated record holds (``unchanged``:
    ``at_last_migrated``'s records)."""
    if row is None:
        return QuarantinedState(key_text, Q_MISSING, reason)
    if key_text not in unchanged:
        return QuarantinedState(key_text, SOURCE_CHANGED, reason)
    read = dict(zip(comparer.row_columns, row, strict=True))
    differences = comparer.differences(key_text, values, read)
    if differences:
        return QuarantinedState(key_text, Q_DIFFERENT, reason, tuple(differences))
    return QuarantinedState(key_text, Q_EQUAL, reason)


def soft_deleted(soft: str | None, row: Mapping[str, Any]) -> bool:
    """Whether ``row``'s soft-delete column ``soft`` (None: not checked apart) is set."""
    return soft is not None and row.get(soft) is not None
