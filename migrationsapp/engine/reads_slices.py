"""Reading a table's keys and content hashes one key range (a slice) at a time.

An analysis reads a large table in slices of about ``rows`` rows, each committed with a
checkpoint, so that a read killed at 90 % resumes at its next slice instead of starting over.
A slice is a range of whole keys (no NULL), ``start <= key < end``: ``end`` is the key
``rows`` rows further in the source's own order of its key (``ORDER BY key``, the order its
index keeps), so a cut is one index probe and a slice one range read, in no particular order.

The ranges are cut by the source's own comparison of keys, whatever its collation: keys it
holds equal ('abc' and 'ABC' under a case-insensitive collation, or one key on two rows)
always fall into the same slice. Nothing is read twice or skipped at a cut, and a repeated
key still reaches the analysis's stage twice, which refuses it. Exactness does not rest on
that order: the stage compares keys by their exact text.

A slice reads in a snapshot of its own: the cut, then its rows, counted first
(``reads.hashed_batches``: ReadEndedEarlyError when fewer arrive). Rows with a NULL in their
key are in no range: the first slice counts them and gives a few, for the analysis's report.

Where the next slice starts travels as JSON (``boundary_json``): the key's values as the
driver read them, with their type, so that they bind again exactly as the source compares
them. A key value of a type it cannot carry, or a key the source orders in another way than
it compares (MySQL's ENUM and SET), is not cut: the rest of the table is one slice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from migrationsapp.engine.introspect import ColumnInfo
from migrationsapp.engine.reads import (
    SourceHandle,
    hashed_batches,
    keyed_table,
    table_clause,
    table_digest,
)
from migrationsapp.engine.reads_keys import key_after, key_at_or_after, key_before
from migrationsapp.engine.reads_values import row_converter

NULL_KEY_SAMPLES = 20


@dataclass
class KeyHashSlice:
    """One slice: its ``(typed key, hash)`` batches (read them inside the ``with``), where the
    next slice starts (None: this one reads to the end), and the NULL-keyed rows of the table
    when asked for (the first slice)."""

    batches: Iterator[list[tuple[tuple, str]]]
    next_start: list | None
    null_keys: int = 0
    null_key_samples: list[tuple] = field(default_factory=list)


@contextmanager
def key_hash_slice(
    db: SourceHandle,
    table: str,
    key_columns: Sequence[str],
    hashed_columns: Sequence[str],
    *,
    start: list | None,
    rows: int | None,
    batch_size: int = 10_000,
    count_null_keys: bool = False,
) -> Iterator[KeyHashSlice]:
    """The slice of ``table`` from ``start`` (a slice's ``next_start``; None: the first key)
    to ``rows`` rows further (None or 0: to the end); the hash is ``stream_key_hashes``'s."""
    info, key_infos = keyed_table(db, table, key_columns, batch_size=batch_size)
    t = table_clause(info, [*key_columns, *hashed_columns])
    keys = [t.c[n] for n in key_columns]
    row_digest = table_digest(db, info, t, table, hashed_columns)
    convert_key = row_converter(db.dialect, key_infos)
    lower = None if start is None else boundary_values(start)
    nullable = [c for c, i in zip(keys, key_infos, strict=True) if i.nullable]
    whole = [c.is_not(None) for c in nullable]
    if rows is not None and (rows < 1 or not _cuttable(db.dialect, key_infos)):
        rows = None
    with db.snapshot() as conn:
        upper = cut_after(conn, keys, whole, lower, rows) if rows else None
        next_start = None if upper is None else boundary_json(upper)
        if next_start is None:
            upper = None  # a value that cannot be carried: the rest is one slice
        where = list(whole)
        if lower is not None:
            where.append(key_at_or_after(keys, lower))
        if upper is not None:
            where.append(key_before(keys, upper))
        stmt = sa.select(*keys, *row_digest.columns)
        if where:
            stmt = stmt.where(*where)
        piece = KeyHashSlice(
            batches=hashed_batches(
                db, table, stmt, batch_size, convert_key, len(keys), row_digest, conn
            ),
            next_start=next_start,
        )
        if count_null_keys and nullable:
            piece.null_keys, piece.null_key_samples = _null_keys(
                conn, t, keys, nullable, convert_key
            )
        yield piece


def _cuttable(dialect: str, key_infos: Sequence[ColumnInfo]) -> bool:
    # MySQL sorts ENUM and SET by their declared position but compares them as text: ranges
    # cut in that order would overlap and leave gaps.
    return dialect != "mysql" or not any(
        info.sql_type.upper().startswith(("ENUM", "SET")) for info in key_infos
    )


def cut_after(
    conn: sa.Connection,
    keys: Sequence[sa.ColumnClause],
    whole: list[sa.ColumnElement],
    lower: tuple | None,
    rows: int,
) -> tuple | None:
    """The first key of the slice after this one, as the driver reads it: ``rows`` keys on
    (for a later slice, the ``rows``-th key strictly after ``lower``, so every slice moves
    on, however many rows share ``lower``); None when fewer rows are left."""
    stmt = sa.select(*keys)
    conditions = list(whole)
    offset = rows
    if lower is not None:
        conditions.append(key_after(keys, lower))
        offset = rows - 1
    if conditions:
        stmt = stmt.where(*conditions)
    found = conn.execute(stmt.order_by(*keys).offset(offset).limit(1)).first()
    return None if found is None else tuple(found)


def _null_keys(
    conn: sa.Connection,
    t: sa.TableClause,
    keys: Sequence[sa.ColumnClause],
    nullable: Sequence[sa.ColumnClause],
    convert_key: Callable[[Sequence], tuple],
) -> tuple[int, list[tuple]]:
    """How many rows have a NULL in a key column, and the first few of their keys."""
    any_null = sa.or_(*(c.is_(None) for c in nullable))
    count = conn.execute(sa.select(sa.func.count()).select_from(t).where(any_null)).scalar_one()
    if not count:
        return 0, []
    sample = conn.execute(sa.select(*keys).where(any_null).limit(NULL_KEY_SAMPLES)).all()
    return int(count), [convert_key(row) for row in sample]


# --- where the next slice starts, as JSON ---------------------------------------------------

_DECODE: dict[str, Callable[[Any], Any]] = {
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    "bytes": bytes.fromhex,
    "decimal": Decimal,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda parts: dt.timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2]),
    "uuid": uuid.UUID,
}


def _tagged(value: Any) -> list | None:
    # bool before int (a bool is an int), datetime before date (a datetime is a date).
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", value]
    if isinstance(value, float):
        return ["float", repr(value)]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, bytes | bytearray | memoryview):
        return ["bytes", bytes(value).hex()]
    if isinstance(value, Decimal):
        return ["decimal", str(value)]
    if isinstance(value, dt.datetime):
        return ["datetime", value.isoformat()]
    if isinstance(value, dt.date):
        return ["date", value.isoformat()]
    if isinstance(value, dt.time):
        return ["time", value.isoformat()]
    if isinstance(value, dt.timedelta):
        return ["timedelta", [value.days, value.seconds, value.microseconds]]
    if isinstance(value, uuid.UUID):
        return ["uuid", str(value)]
    return None


def boundary_json(values: Sequence[Any]) -> list | None:
    """A key's values as JSON, each with its type; None when one has a type not carried."""
    out = []
    for value in values:
        tagged = _tagged(value)
        if tagged is None:
            return None
        out.append(tagged)
    return out


def boundary_values(data: Sequence[Sequence[Any]]) -> tuple:
    """The key values ``boundary_json`` wrote, in their types again."""
    try:
        return tuple(_DECODE[tag](value) for tag, value in data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a slice boundary: {data!r}") from exc
