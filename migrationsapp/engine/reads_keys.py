"""Which source rows a read by key asks for, and which of them it keeps.

A key asked for arrives typed (from a stream) or in its stored text form
(``ids.storage_values``: "12.50", ISO dates, hex for bytes); it is bound in the Python type
the driver binds for its column (``bind_value``), or left out when no row of that column
can hold it. The WHERE clauses that read the keys are one ``BETWEEN`` for a dense run of
integer keys (a baseline's batch), else IN lists of ``FETCH_CHUNK`` keys. A key of several
columns whose first is an integer, in a dense run of first values (a baseline's batch of
appointments by ``(patient_id, seq)``), is read first as one ``BETWEEN`` on that column
(``first_column_range``), capped: the range may also hold rows of those first values that
were not asked for, and past ``RANGE_ROWS_PER_KEY`` rows a key the caller reads the lists
instead. The server's
collation may return more than was asked ('ABC' for 'abc', 'a' for 'a '): a row is kept
only when its key has the same ``identity``, compared in Python.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from migrationsapp.engine.ids import value_text
from migrationsapp.engine.introspect import ColumnInfo

FETCH_CHUNK = 1000  # keys per statement
# A first column's range read stops past this many rows a key asked (the keys' lists read
# them then): its cost stays within a few times the batch's, however the rows fall.
RANGE_ROWS_PER_KEY = 4

Identity = tuple[str | None, ...]


class NoMatch(Exception):
    """A requested key value that no row of this column can hold."""


def _boolean(value: Any) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in {"1", "t", "true", "y", "yes"}:
            return True
        if word in {"0", "f", "false", "n", "no"}:
            return False
        raise ValueError(value)
    return bool(value)


def bind_value(dialect: str, column: ColumnInfo, value: Any) -> Any:
    """A requested key value in the Python type the driver binds for this column.

    Raises NoMatch for a value no row of the column can hold.
    """
    if value is None:
        return value
    if dialect == "sqlite":
        # SQLite compares stored values by its own affinity rules; sqlite3 binds only
        # int, float, str and bytes.
        return str(value) if isinstance(value, Decimal | uuid.UUID) else value
    kind = column.kind
    try:
        if isinstance(value, str):
            if kind == "integer":
                return int(value)
            if kind == "numeric":
                return Decimal(value)
            if kind == "float":
                return float(value)
            if kind == "date":
                return dt.date.fromisoformat(value)
            if kind in ("datetime", "datetime_tz"):
                value = dt.datetime.fromisoformat(value)
            elif kind == "time":
                return dt.time.fromisoformat(value)
            elif kind == "uuid" and dialect == "postgresql":
                return uuid.UUID(value)
            elif kind == "bytes":
                return bytes.fromhex(value)
            elif kind == "boolean":
                value = _boolean(value)
        elif kind == "text":
            return value_text(value)  # the text a non-text value reads as
        if kind == "boolean" and dialect == "mysql":
            return int(value)
        if dialect == "mysql" and isinstance(value, dt.datetime) and value.tzinfo is not None:
            # The session zone is UTC and the MySQL drivers bind naive values.
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    except (ValueError, InvalidOperation, TypeError) as exc:
        if dialect == "mysql" and kind in ("date", "datetime", "datetime_tz", "time"):
            return value  # zero and impossible dates are stored, and read, as text
        raise NoMatch from exc


def identity(key: Sequence[Any]) -> Identity:
    """The exact identity of a key: each value's text (ids.value_text), NULL kept apart
    from the text 'None'. Compared in Python, so no collation has a say."""
    # Integers and text, most keys, are their own str(): checked first, as this runs once
    # a row.
    return tuple(
        v if type(v) is str else str(v) if type(v) is int else None if v is None else value_text(v)
        for v in key
    )


def bound_keys(
    dialect: str, key_infos: Sequence[ColumnInfo], keys: Sequence[Sequence[Any]]
) -> tuple[set[Identity], list[tuple]]:
    """The keys asked for, as identities (to filter exact matches) and as bind values.

    Repeated keys are asked once; a key that cannot match the column's type is left out.
    """
    if all(c.kind == "integer" for c in key_infos):
        integers = _integer_keys(len(key_infos), keys)
        if integers is not None:
            return integers
    wanted: set[Identity] = set()
    bound: list[tuple] = []
    for key in keys:
        if len(key) != len(key_infos):
            raise ValueError(f"key {key!r} does not have {len(key_infos)} values")
        ident = identity(key)
        if ident in wanted:
            continue
        try:
            values = tuple(bind_value(dialect, c, v) for c, v in zip(key_infos, key, strict=True))
        except NoMatch:
            continue
        wanted.add(ident)
        bound.append(values)
    return wanted, bound


def _integer_keys(
    width: int, keys: Sequence[Sequence[Any]]
) -> tuple[set[Identity], list[tuple]] | None:
    """``bound_keys`` for keys of integer columns given as ints (a batch of most tables):
    each is bound as it is and its identity is its values' ``str``. None when one is not."""
    bound = list(dict.fromkeys(tuple(key) for key in keys))
    for key in bound:
        if len(key) != width:
            raise ValueError(f"key {key!r} does not have {width} values")
        for value in key:
            if type(value) is not int:
                return None  # text forms, NULL, bool: each key its own way
    return {tuple(map(str, key)) for key in bound}, bound


def _key_condition(key_cols: Sequence[sa.ColumnClause], chunk: list[tuple]) -> sa.ColumnElement:
    with_null = [values for values in chunk if None in values]
    plain = [values for values in chunk if None not in values]
    conditions: list[sa.ColumnElement] = []
    if plain:
        if len(key_cols) == 1:
            conditions.append(key_cols[0].in_([values[0] for values in plain]))
        else:
            conditions.append(sa.tuple_(*key_cols).in_(plain))
    # NULL never equals anything, in IN lists too: such keys need IS NULL, one by one.
    for values in with_null:
        parts = zip(key_cols, values, strict=True)
        conditions.append(sa.and_(*(c.is_(None) if v is None else c == v for c, v in parts)))
    return sa.or_(*conditions)


def _dense_range(key_infos: Sequence[ColumnInfo], bound: list[tuple]) -> tuple[int, int] | None:
    """``(lo, hi)`` when ``bound`` is a dense run of one integer key column, else None.

    Dense: the range holds at most twice as many values as keys are asked for, so reading
    it whole costs at most one row read and dropped per key, and saves the server a long
    IN list (the usual baseline batch is a run of consecutive ids).
    """
    if len(key_infos) != 1 or key_infos[0].kind != "integer" or len(bound) < 2:
        return None
    values = [key[0] for key in bound]
    if not all(type(v) is int for v in values):
        return None  # text forms (SQLite binds them as given) or NULL: the list reads them
    lo, hi = min(values), max(values)
    return (lo, hi) if hi - lo + 1 <= 2 * len(values) else None


def key_conditions(
    key_cols: Sequence[sa.ColumnClause], key_infos: Sequence[ColumnInfo], bound: list[tuple]
) -> Iterator[sa.ColumnElement]:
    """WHERE clauses that together read every row of the ``bound`` keys (and maybe more:
    callers keep only exact matches)."""
    dense = _dense_range(key_infos, bound)
    if dense is not None:
        yield key_cols[0].between(*dense)
        return
    for start in range(0, len(bound), FETCH_CHUNK):
        yield _key_condition(key_cols, bound[start : start + FETCH_CHUNK])


def first_column_range(
    key_cols: Sequence[sa.ColumnClause], key_infos: Sequence[ColumnInfo], bound: list[tuple]
) -> tuple[sa.ColumnElement, int] | None:
    """``(first column BETWEEN lo AND hi, row cap)`` for keys of several columns whose first
    values are integers in a dense run, else None. Dense: the range holds at most twice as
    many first values as the keys have. Reading more rows than the cap means the range holds
    much that was not asked for: the caller then reads the keys' lists instead."""
    if len(key_infos) < 2 or key_infos[0].kind != "integer" or len(bound) < 2:
        return None
    firsts = {key[0] for key in bound}
    if not all(type(v) is int for v in firsts):
        return None  # text forms (SQLite binds them as given) or NULL: the lists read them
    lo, hi = min(firsts), max(firsts)
    if hi - lo + 1 > 2 * len(firsts):
        return None
    return key_cols[0].between(lo, hi), RANGE_ROWS_PER_KEY * len(bound)


def key_after(keys: Sequence[sa.ColumnClause], values: Sequence[Any]) -> sa.ColumnElement:
    """``(k1, k2, …) > (v1, v2, …)`` written out, so every dialect (and index) understands it."""
    first, value = keys[0], values[0]
    if len(keys) == 1:
        return first > value
    return sa.or_(first > value, sa.and_(first == value, key_after(keys[1:], values[1:])))


def key_at_or_after(keys: Sequence[sa.ColumnClause], values: Sequence[Any]) -> sa.ColumnElement:
    """``(k1, k2, …) >= (v1, v2, …)``, with the first column's range first for the index."""
    first, value = keys[0], values[0]
    if len(keys) == 1:
        return first >= value
    return sa.and_(first >= value, sa.or_(first > value, key_at_or_after(keys[1:], values[1:])))


def key_before(keys: Sequence[sa.ColumnClause], values: Sequence[Any]) -> sa.ColumnElement:
    """``(k1, k2, …) < (v1, v2, …)``, with the first column's range first for the index."""
    first, value = keys[0], values[0]
    if len(keys) == 1:
        return first < value
    return sa.and_(first <= value, sa.or_(first < value, key_before(keys[1:], values[1:])))
