"""Reading rows out of a source database: snapshot streams, content hashes and fetch-by-key.

* ``stream_key_hashes`` streams every row's key and content hash (``reads_hash.py``) from
  one consistent snapshot; ``stream_key_hashes_by_timestamp`` does the same for the rows of
  a timestamp window.
* ``stream_rows`` streams chosen columns from one snapshot.
* ``reads_slices.key_hash_slice`` reads the same keys and hashes as ``stream_key_hashes``
  one key range at a time, each from a snapshot of its own (an analysis's slices).
* ``fetch_rows`` and ``fetch_key_hashes`` read rows by key and keep only exact (binary) key
  matches, whatever the source's collation thinks is equal (``reads_keys.py``).

Every stream reads in batches through a server-side cursor, so memory stays constant in
the size of the table, and a read that ends early never returns a shorter stream: a
dropped connection or an aborted statement raises SourceUnavailableError, and a stream
that stops short without any error (a row limit such as MySQL's ``sql_select_limit``, a
proxy that ends a result quietly) raises ReadEndedEarlyError, found by counting the rows
in the same snapshot first.

Values come back as the driver gives them, a few MySQL types made regular
(``reads_values.py``). The functions take any ``SourceHandle``; ``database.Database`` has
them as its methods.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import sqlalchemy as sa

from migrationsapp.engine.errors import ConfigurationError, ReadEndedEarlyError, TerminalError
from migrationsapp.engine.introspect import ColumnInfo, TableInfo
from migrationsapp.engine.mysql_drivers import abandon_stream
from migrationsapp.engine.reads_hash import Digest, digest
from migrationsapp.engine.reads_keys import (
    NoMatch,
    bind_value,
    bound_keys,
    first_column_range,
    identity,
    key_after,
    key_conditions,
)
from migrationsapp.engine.reads_values import row_converter


class SourceHandle(Protocol):
    """What the reads need of an open database (``database.Database`` is one)."""

    name: str
    dialect: str

    def require_table(self, name: str) -> TableInfo: ...

    def connect(self) -> AbstractContextManager[sa.Connection]: ...

    def snapshot(self) -> AbstractContextManager[sa.Connection]: ...


# --- what is read -----------------------------------------------------------------------


def _columns(db: SourceHandle, info: TableInfo, names: Sequence[str]) -> list[ColumnInfo]:
    missing = [n for n in names if info.column(n) is None]
    if missing:
        raise ConfigurationError(
            f"table {info.name!r} of database {db.name!r} has no column "
            + ", ".join(repr(n) for n in missing)
        )
    return [info.columns[n] for n in names]


def keyed_table(
    db: SourceHandle, table: str, key_columns: Sequence[str], *, batch_size: int = 1
) -> tuple[TableInfo, list[ColumnInfo]]:
    """The table and its key columns, checked now: a bad table or column fails the call
    itself, not the first ``next()`` of a stream."""
    if not key_columns:
        raise ConfigurationError(f"reading {table!r} from {db.name!r}: no key columns given")
    _check_batch_size(batch_size)
    info = db.require_table(table)
    return info, _columns(db, info, key_columns)


def table_clause(info: TableInfo, names: Sequence[str]) -> sa.TableClause:
    # Untyped columns: SQLAlchemy quotes the (introspected) names but adds no result
    # processing, so values arrive exactly as the driver reads them.
    return sa.table(info.name, *(sa.column(n) for n in dict.fromkeys(names)), schema=info.schema)


def table_digest(
    db: SourceHandle, info: TableInfo, t: sa.TableClause, table: str, hashed: Sequence[str]
) -> Digest:
    return digest(
        db.dialect,
        [t.c[n] for n in hashed],
        _columns(db, info, hashed),
        source=f"table {table!r} of database {db.name!r}",
    )


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")


# --- streams ----------------------------------------------------------------------------


def _stream(
    db: SourceHandle,
    table: str,
    stmt: sa.Select,
    batch_size: int,
    conn: sa.Connection | None = None,
) -> Iterator[Sequence[sa.Row[Any]]]:
    """Batches of ``stmt``'s rows from one snapshot, through a server-side cursor.

    The rows are counted first, in the same snapshot, and a stream that ends with fewer
    raises ReadEndedEarlyError: whoever reads it (an analysis) would otherwise take every
    row it did not see as deleted. ``conn``: a snapshot the caller holds open (a key slice
    reads its bounds in it first), else one of the stream's own.
    """
    if conn is None:
        with db.snapshot() as own:
            yield from _stream(db, table, stmt, batch_size, own)
        return
    expected = conn.execute(_count_of(stmt)).scalar_one()
    result = conn.execution_options(yield_per=batch_size).execute(stmt)
    finished = False
    read = 0
    try:
        for batch in result.partitions(batch_size):
            read += len(batch)
            yield batch
        finished = True
    finally:
        if not finished and db.dialect == "mysql":
            abandon_stream(getattr(result, "cursor", None))
            # The connection was given up on purpose: its error on close says nothing.
            with contextlib.suppress(sa.exc.DBAPIError):
                result.close()
            if not conn.invalidated:
                conn.invalidate()
        else:
            result.close()
    # Fewer is what loses keys; more (a source without snapshots, e.g. MyISAM, taking
    # inserts during the read) loses none.
    if read < expected:
        raise ReadEndedEarlyError(
            f"reading table {table!r} of database {db.name!r} ended early: {read} of its "
            f"{expected} rows arrived, without an error from the server; the rows not read "
            "are not taken as deleted",
            hint="Look for a row limit on the source server or a proxy in between (e.g. "
            "MySQL's sql_select_limit) or a connection that was cut, then run again.",
        )


def _count_of(stmt: sa.Select) -> sa.Select:
    """``SELECT count(*)`` over the rows ``stmt`` reads (same table and conditions)."""
    # maintain_column_froms: the FROM comes from the columns replaced here.
    return stmt.with_only_columns(sa.func.count(), maintain_column_froms=True).order_by(None)


def hashed_batches(
    db: SourceHandle,
    table: str,
    stmt: sa.Select,
    batch_size: int,
    convert_key: Callable[[Sequence], tuple],
    n_keys: int,
    row_digest: Digest,
    conn: sa.Connection | None = None,
) -> Iterator[list[tuple[tuple, str]]]:
    """``(typed key, hash)`` batches of ``stmt``, which selects the key and the digest (in
    ``conn``'s snapshot when given, see ``_stream``)."""
    if row_digest.in_python:
        for batch in _stream(db, table, stmt, batch_size, conn):
            out = []
            for row in batch:
                key = convert_key(row[:n_keys])
                out.append((key, row_digest.of(key, row[n_keys:])))
            yield out
        return
    # The server's hash is one column after the key: a batch is two list comprehensions,
    # not a call per row (an analysis reads every row of the table).
    for batch in _stream(db, table, stmt, batch_size, conn):
        keys = [convert_key(row[:n_keys]) for row in batch]
        hashes = [row[n_keys] for row in batch]
        if None in hashes:
            raise row_digest.too_large(keys[hashes.index(None)])
        yield list(zip(keys, hashes, strict=True))


def stream_key_hashes(
    db: SourceHandle,
    table: str,
    key_columns: Sequence[str],
    hashed_columns: Sequence[str],
    *,
    batch_size: int = 10_000,
) -> Iterator[list[tuple[tuple, str]]]:
    """Batches of ``(typed key, content hash)`` for every row of ``table``.

    The hash covers ``hashed_columns`` in the given order; it is the same for unchanged
    data and differs when any of those columns' values changes (case, trailing spaces,
    NULL vs empty included).
    """
    info, key_infos = keyed_table(db, table, key_columns, batch_size=batch_size)
    t = table_clause(info, [*key_columns, *hashed_columns])
    row_digest = table_digest(db, info, t, table, hashed_columns)
    stmt = sa.select(*(t.c[n] for n in key_columns), *row_digest.columns)
    convert_key = row_converter(db.dialect, key_infos)
    return hashed_batches(db, table, stmt, batch_size, convert_key, len(key_columns), row_digest)


def stream_rows(
    db: SourceHandle, table: str, columns: Sequence[str], *, batch_size: int = 10_000
) -> Iterator[list[dict[str, Any]]]:
    """Batches of ``{column: value}`` for every row of ``table``, from one snapshot."""
    _check_batch_size(batch_size)
    info = db.require_table(table)
    convert = row_converter(db.dialect, _columns(db, info, columns))
    t = table_clause(info, columns)
    stmt = sa.select(*(t.c[n] for n in columns))
    names = list(columns)

    def batches() -> Iterator[list[dict[str, Any]]]:
        for batch in _stream(db, table, stmt, batch_size):
            yield [dict(zip(names, convert(row), strict=True)) for row in batch]

    return batches()


def _bind_cursor_value(db: SourceHandle, column: ColumnInfo, value: Any) -> Any:
    try:
        return bind_value(db.dialect, column, value)
    except NoMatch as exc:
        raise TerminalError(
            f"column {column.name!r} of database {db.name!r} cannot be compared with the "
            f"detection cursor value {value!r}",
            hint="Run once with --baseline to start the timestamp cursor again.",
        ) from exc


def stream_key_hashes_by_timestamp(
    db: SourceHandle,
    table: str,
    key_columns: Sequence[str],
    hashed_columns: Sequence[str],
    timestamp_column: str,
    *,
    since: Any = None,
    after_key: Sequence[Any] | None = None,
    batch_size: int = 10_000,
) -> Iterator[list[tuple[tuple, str, Any]]]:
    """Batches of ``(typed key, content hash, timestamp)`` for the rows of a timestamp window.

    The window holds every row whose timestamp is NULL (such a row cannot be placed against
    a cursor, so it is always looked at) and every row at or after ``since`` (all rows when
    ``since`` is None). With ``after_key`` the start is exclusive on the tuple:
    ``(timestamp, key) > (since, after_key)``, so rows sharing the start's timestamp are
    neither lost nor read twice. Rows come ordered by ``(timestamp, key)`` with the NULL
    timestamps first: the last non-NULL row is the window's maximum in the source's own
    order (its collation for text keys), which is the order the next window is cut in.
    ``since`` and ``after_key`` may be typed or in their stored text form (ISO dates).
    """
    info, key_infos = keyed_table(db, table, key_columns, batch_size=batch_size)
    ts_info = _columns(db, info, [timestamp_column])[0]
    t = table_clause(info, [*key_columns, *hashed_columns, timestamp_column])
    keys = [t.c[n] for n in key_columns]
    ts = t.c[timestamp_column]
    row_digest = table_digest(db, info, t, table, hashed_columns)
    stmt = sa.select(*keys, ts, *row_digest.columns)
    if since is not None:
        bound = _bind_cursor_value(db, ts_info, since)
        if after_key is None:
            start = ts >= bound
        else:
            if len(after_key) != len(key_columns):
                raise ValueError(
                    f"cursor key {after_key!r} does not have {len(key_columns)} values"
                )
            bound_key = [
                _bind_cursor_value(db, c, v) for c, v in zip(key_infos, after_key, strict=True)
            ]
            start = sa.or_(ts > bound, sa.and_(ts == bound, key_after(keys, bound_key)))
        stmt = stmt.where(sa.or_(ts.is_(None), start))
    # MySQL and SQLite sort NULL first in ascending order already; PostgreSQL must be told.
    stmt = stmt.order_by(ts.nulls_first() if db.dialect == "postgresql" else ts, *keys)
    n_keys = len(keys)
    convert_key = row_converter(db.dialect, key_infos)
    convert_ts = row_converter(db.dialect, [ts_info])

    def batches() -> Iterator[list[tuple[tuple, str, Any]]]:
        for batch in _stream(db, table, stmt, batch_size):
            out = []
            for row in batch:
                key = convert_key(row[:n_keys])
                content_hash = row_digest.of(key, row[n_keys + 1 :])
                out.append((key, content_hash, convert_ts(row[n_keys : n_keys + 1])[0]))
            yield out

    return batches()


# --- fetch by key -----------------------------------------------------------------------


def _rows_of_keys(
    db: SourceHandle,
    key_cols: Sequence[sa.ColumnClause],
    key_infos: Sequence[ColumnInfo],
    bound: list[tuple],
    selected: Sequence[sa.ColumnElement],
) -> Iterator[sa.Row[Any]]:
    """The rows ``selected`` reads for the ``bound`` keys, and maybe others: the caller
    keeps the exact matches."""
    with db.connect() as conn:
        ranged = first_column_range(key_cols, key_infos, bound)
        if ranged is not None:
            where, cap = ranged
            rows = conn.execute(sa.select(*selected).where(where).limit(cap + 1)).all()
            if len(rows) <= cap:
                yield from rows
                return
            # The range holds much more than the keys asked: their lists read them instead.
        for where in key_conditions(key_cols, key_infos, bound):
            yield from conn.execute(sa.select(*selected).where(where)).all()


def fetch_rows(
    db: SourceHandle,
    table: str,
    key_columns: Sequence[str],
    keys: Sequence[tuple],
    columns: Sequence[str],
) -> dict[tuple, dict[str, Any]]:
    """The rows of ``table`` whose key is exactly one of ``keys``.

    Returns ``{key as stored in the source: {column: value}}``. A key matches only if each
    of its values has the same text (ids.value_text) as the row's: MySQL's default
    collations would also return 'ABC' for 'abc' and 'a' for 'a ', and those rows are
    left out. Keys may be given typed or in their stored text form ("12.50", ISO dates).
    """
    info, key_infos = keyed_table(db, table, key_columns)
    infos = _columns(db, info, columns)
    wanted, bound = bound_keys(db.dialect, key_infos, keys)

    selected = list(dict.fromkeys([*key_columns, *columns]))
    t = table_clause(info, selected)
    by_name = {c.name: c for c in [*key_infos, *infos]}
    convert = row_converter(db.dialect, [by_name[n] for n in selected])
    key_at = [selected.index(n) for n in key_columns]
    column_at = [(n, selected.index(n)) for n in columns]
    found: dict[tuple, dict[str, Any]] = {}
    key_cols = [t.c[n] for n in key_columns]
    for row in _rows_of_keys(db, key_cols, key_infos, bound, [t.c[n] for n in selected]):
        values = convert(row)
        key = tuple(values[i] for i in key_at)
        if identity(key) in wanted:
            found[key] = {n: values[i] for n, i in column_at}
    return found


def fetch_key_hashes(
    db: SourceHandle,
    table: str,
    key_columns: Sequence[str],
    hashed_columns: Sequence[str],
    keys: Sequence[Sequence[Any]],
) -> dict[tuple, str]:
    """The content hash of the rows whose key is exactly one of ``keys``.

    Returns ``{key as stored in the source: hash}``; the hash is ``stream_key_hashes``'s.
    Exact (binary) key matches only, as in ``fetch_rows``; keys may be typed or in their
    stored text form.
    """
    info, key_infos = keyed_table(db, table, key_columns)
    wanted, bound = bound_keys(db.dialect, key_infos, keys)
    t = table_clause(info, [*key_columns, *hashed_columns])
    key_cols = [t.c[n] for n in key_columns]
    row_digest = table_digest(db, info, t, table, hashed_columns)
    convert_key = row_converter(db.dialect, key_infos)
    n_keys = len(key_cols)
    found: dict[tuple, str] = {}
    for row in _rows_of_keys(db, key_cols, key_infos, bound, [*key_cols, *row_digest.columns]):
        key = convert_key(row[:n_keys])
        if identity(key) in wanted:
            found[key] = row_digest.of(key, row[n_keys:])
    return found
