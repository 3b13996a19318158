"""A first baseline's read: a table's rows in key order, a batch at a time, each row with its
content hash from the same SELECT.

An entity whose record map is still empty has nothing to compare: every source row is new.
Its baseline then skips the analysis's stage and change set and reads the table by key range
(``services.key_range_baseline``): ``WHERE key > last ORDER BY key LIMIT n``, one statement
a batch, each a consistent snapshot of its rows, whose values and hash travel together (the
hash is ``reads_hash``'s, so the next analysis finds the row unchanged).

Only a key the source orders exactly as it compares, and holds once a row, is read this way:
the table's primary key, of integer columns. A text key under a case-insensitive collation
holds 'abc' and 'ABC' equal: a batch ending on one would skip the other. Such a table keeps
the analysis's path, which compares keys by their exact text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from migrationsapp.engine.reads import SourceHandle, keyed_table, table_clause, table_digest
from migrationsapp.engine.reads_keys import key_after, key_at_or_after, key_before
from migrationsapp.engine.reads_slices import cut_after
from migrationsapp.engine.reads_values import row_converter
from migrationsapp.engine.row_columns import RowColumns


@dataclass(frozen=True)
class KeyRangeBatch:
    """Rows of a table in key order: each row's key as the driver read it, its content hash,
    and the columns asked, a column at a time."""

    keys: list[tuple]
    hashes: list[str]
    columns: RowColumns

    def __len__(self) -> int:
        return len(self.keys)


def key_range_refusal(db: SourceHandle, table: str, key_columns: Sequence[str]) -> str | None:
    """Why ``table`` cannot be read by key range on ``key_columns`` (None: it can)."""
    info = db.require_table(table)
    if tuple(info.primary_key) != tuple(key_columns):
        return f"its source_key {list(key_columns)} is not the table's primary key"
    kinds = [info.columns[name].kind for name in key_columns]
    if any(kind != "integer" for kind in kinds):
        return "its key is not of integer columns"
    return None


def read_key_range(
    db: SourceHandle,
    table: str,
    key_columns: Sequence[str],
    columns: Sequence[str],
    hashed_columns: Sequence[str],
    *,
    after: Sequence[Any] | None,
    start: Sequence[Any] | None = None,
    end: Sequence[Any] | None = None,
    limit: int,
) -> KeyRangeBatch:
    """The first ``limit`` rows of ``table`` by key, past ``after`` (None: from ``start``,
    included, or the first key), before ``end`` (excluded; None: to the last key)."""
    info, _ = keyed_table(db, table, key_columns, batch_size=limit)
    t = table_clause(info, [*key_columns, *columns, *hashed_columns])
    keys = [t.c[name] for name in key_columns]
    row_digest = table_digest(db, info, t, table, hashed_columns)
    # The columns asked first, then the key columns not among them: a row's dict is the
    # first values of its tuple, zipped with the names asked.
    read = list(dict.fromkeys([*columns, *key_columns]))
    convert = row_converter(db.dialect, [info.columns[name] for name in read])
    where: list[sa.ColumnElement] = []
    if after is not None:
        where.append(key_after(keys, list(after)))
    elif start is not None:
        where.append(key_at_or_after(keys, list(start)))
    if end is not None:
        where.append(key_before(keys, list(end)))
    stmt = sa.select(*(t.c[name] for name in read), *row_digest.columns)
    if where:
        stmt = stmt.where(*where)
    stmt = stmt.order_by(*keys).limit(limit)
    with db.connect() as conn:
        fetched = conn.execute(stmt).all()
    width = len(read)
    values = [convert(row[:width]) for row in fetched]
    key_at = [read.index(name) for name in key_columns]
    if len(key_at) == 1:
        (at,) = key_at
        row_keys = [(row[at],) for row in values]
    else:
        row_keys = [tuple(row[i] for i in key_at) for row in values]
    if row_digest.in_python:
        hashes = [
            row_digest.of(key, row[width:]) for key, row in zip(row_keys, fetched, strict=True)
        ]
    else:
        hashes = [row[width] for row in fetched]
        if None in hashes:
            raise row_digest.too_large(row_keys[hashes.index(None)])
    # The columns asked are the first of each row's values: the key columns read after them
    # stay out (zip transposes in C).
    asked = [list(column) for column in zip(*values, strict=True)][: len(columns)]
    if not values:
        asked = [[] for _ in columns]
    return KeyRangeBatch(
        keys=row_keys, hashes=hashes, columns=RowColumns(list(columns), asked, len(values))
    )


def key_range_cuts(
    db: SourceHandle, table: str, key_columns: Sequence[str], *, every: int
) -> tuple[int, list[tuple]]:
    """The table's row count and the keys that split it into ranges of ``every`` rows (the
    first key of each range after the first), read in one snapshot."""
    info, _ = keyed_table(db, table, key_columns)
    t = table_clause(info, key_columns)
    keys = [t.c[name] for name in key_columns]
    cuts: list[tuple] = []
    with db.snapshot() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
        lower: tuple | None = None
        while every > 0 and (len(cuts) + 1) * every < count:
            lower = cut_after(conn, keys, [], lower, every)
            if lower is None:
                break
            cuts.append(lower)
    return int(count), cuts
