"""Reading rows out of a database: snapshot streams, content hashes and fetch-by-key.

* ``stream_key_hashes`` streams every row's key and a content hash from one consistent
  snapshot. On MySQL/MariaDB and PostgreSQL the hash is computed by the server (md5 over
  a NULL-safe, length-prefixed concatenation of each column's text) so only keys and
  32-character hashes cross the wire; on SQLite it is computed here from the values.
* ``stream_rows`` streams chosen columns from one snapshot.
* ``fetch_rows`` fetches rows by key and keeps only exact (binary) key matches, whatever
  the source's collation thinks is equal. A dense run of integer keys (a baseline's batch)
  is read as one bound ``BETWEEN`` range, other keys as IN lists.

Every stream reads in batches through a server-side cursor, so memory stays constant in
the size of the table, and a read that ends early never returns a shorter stream: a
dropped connection or an aborted statement raises SourceUnavailableError, and a stream
that stops short without any error (a row limit such as MySQL's ``sql_select_limit``, a
proxy that ends a result quietly) raises ReadEndedEarlyError, found by counting the rows
in the same snapshot first.

Values come back as the driver gives them (mysqlclient or PyMySQL, which read alike:
mysql_drivers.py; psycopg; sqlite3), with a few MySQL types made regular: BIT -> int,
TIME -> datetime.time, TIMESTAMP -> aware UTC datetime, JSON text -> Python objects, UUID
text -> uuid.UUID. Values the types cannot hold (zero dates such as ``'0000-00-00'``,
impossible dates, TIME beyond 24h) stay as raw strings.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from migrationsapp.engine.errors import ConfigurationError, ReadEndedEarlyError, TerminalError
from migrationsapp.engine.ids import encode_key, value_text
from migrationsapp.engine.introspect import ColumnInfo, TableInfo
from migrationsapp.engine.mysql_drivers import abandon_stream

if TYPE_CHECKING:
    from migrationsapp.engine.connectors import Database

FETCH_CHUNK = 1000  # keys per statement in fetch_rows

Converter = Callable[[Any], Any]


# --- columns ----------------------------------------------------------------------------


def _columns(db: Database, info: TableInfo, names: Sequence[str]) -> list[ColumnInfo]:
    missing = [n for n in names if info.column(n) is None]
    if missing:
        raise ConfigurationError(
            f"table {info.name!r} of database {db.name!r} has no column "
            + ", ".join(repr(n) for n in missing)
        )
    return [info.columns[n] for n in names]


def _table_clause(info: TableInfo, names: Sequence[str]) -> sa.TableClause:
    # Untyped columns: SQLAlchemy quotes the (introspected) names but adds no result
    # processing, so values arrive exactly as the driver reads them.
    return sa.table(info.name, *(sa.column(n) for n in dict.fromkeys(names)), schema=info.schema)


# --- value conversion -------------------------------------------------------------------


def _mysql_time(value: Any) -> Any:
    # Both MySQL drivers read TIME as timedelta because MySQL TIME spans -838:59:59..838:59:59.
    if not isinstance(value, dt.timedelta):
        return value
    if dt.timedelta(0) <= value < dt.timedelta(days=1):
        return (dt.datetime.min + value).time()
    total = abs(value)
    hours, rest = divmod(total, dt.timedelta(hours=1))
    minutes, rest = divmod(rest, dt.timedelta(minutes=1))
    text = f"{'-' if value < dt.timedelta(0) else ''}{hours:02d}:{minutes:02d}:{rest.seconds:02d}"
    return text + (f".{rest.microseconds:06d}" if rest.microseconds else "")


def _mysql_utc(value: Any) -> Any:
    return value.replace(tzinfo=dt.UTC) if isinstance(value, dt.datetime) else value


def _bits(value: Any) -> Any:
    return int.from_bytes(value, "big") if isinstance(value, bytes) else value


def _json(value: Any) -> Any:
    if not isinstance(value, str | bytes):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # legacy text that is not JSON is read, not refused


def _uuid(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return value
    return value


def _converter(dialect: str, column: ColumnInfo) -> Converter | None:
    """How a driver value of this column becomes the engine's value (None: as it is)."""
    if dialect != "mysql":
        return None  # psycopg already returns the right types; SQLite values stay raw
    if column.sql_type.upper().split("(")[0].strip() == "BIT":
        return _bits
    return {
        "time": _mysql_time,
        "datetime_tz": _mysql_utc,
        "json": _json,
        "uuid": _uuid,
    }.get(column.kind)


def _row_converter(dialect: str, columns: Sequence[ColumnInfo]) -> Callable[[Sequence], tuple]:
    converters = [_converter(dialect, c) for c in columns]
    if not any(converters):
        return tuple

    def convert(row: Sequence) -> tuple:
        return tuple(
            v if (fn is None or v is None) else fn(v) for fn, v in zip(converters, row, strict=True)
        )

    return convert


# --- content hash -----------------------------------------------------------------------

_COLON = sa.literal_column("':'")
_NULL_MARK = sa.literal_column("'N'")
_MYSQL_BINARY = ("BINARY", "VARBINARY", "TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB", "BIT")


def _mysql_text(col: sa.ColumnClause, info: ColumnInfo) -> sa.ColumnElement:
    base = info.sql_type.upper().split("(")[0].strip()
    if info.kind in ("bytes", "other") or base in _MYSQL_BINARY:
        # Bytes are not text in any charset, and geometry cannot even be CAST to CHAR:
        # hex keeps every byte.
        return sa.func.hex(col)
    if base == "FLOAT":
        # A single-precision FLOAT casts to 6 significant digits, hiding a change in the
        # 7th; as a DOUBLE (`+ 0e0` works on every MySQL version) it prints exactly.
        col = col + sa.literal_column("0e0")
    # One charset for every column, or CONCAT fails on an "illegal mix of collations".
    return sa.cast(col, mysql.CHAR(charset="utf8mb4"))


def _mysql_hash(cols: Sequence[sa.ColumnClause], infos: Sequence[ColumnInfo]) -> sa.ColumnElement:
    # Each value becomes "<length>:<text>", NULL becomes "N": unambiguous once concatenated.
    pieces = []
    for col, info in zip(cols, infos, strict=True):
        text = _mysql_text(col, info)
        pieces.append(
            sa.func.coalesce(sa.func.concat(sa.func.char_length(text), _COLON, text), _NULL_MARK)
        )
    return sa.func.md5(sa.func.concat(*pieces) if pieces else sa.literal_column("''"))


def _postgresql_hash(cols: Sequence[sa.ColumnClause]) -> sa.ColumnElement:
    # `||` rather than concat(): concat() skips NULLs and takes at most 100 arguments.
    pieces: list[sa.ColumnElement] = []
    for col in cols:
        text = sa.cast(col, sa.Text)
        piece = sa.cast(sa.func.length(text), sa.Text).op("||")(_COLON).op("||")(text)
        pieces.append(sa.func.coalesce(piece, _NULL_MARK))
    if not pieces:
        return sa.func.md5(sa.literal_column("''"))
    joined = pieces[0]
    for piece in pieces[1:]:
        joined = joined.op("||")(piece)
    return sa.func.md5(joined)


def _encode_value(value: Any) -> bytes:
    # Type tag + length + payload: 1 and '1' differ, as do ('a|b','c') and ('a','b|c').
    if value is None:
        return b"N"
    if isinstance(value, bytes | bytearray | memoryview):
        tag, payload = b"b", bytes(value)
    elif isinstance(value, bool):
        tag, payload = b"?", b"1" if value else b"0"
    elif isinstance(value, int):
        tag, payload = b"i", str(value).encode()
    elif isinstance(value, float):
        tag, payload = b"f", repr(value).encode()
    elif isinstance(value, str):
        tag, payload = b"s", value.encode("utf-8", "surrogatepass")
    else:
        tag, payload = b"o", repr(value).encode("utf-8", "surrogatepass")
    return tag + str(len(payload)).encode() + b":" + payload


def python_row_hash(values: Sequence[Any]) -> str:
    """The content hash of a row computed in Python (SQLite), hex md5."""
    digest = hashlib.md5(usedforsecurity=False)
    for value in values:
        digest.update(_encode_value(value))
    return digest.hexdigest()


# --- streams ----------------------------------------------------------------------------


def _stream(
    db: Database, table: str, stmt: sa.Select, batch_size: int
) -> Iterator[Sequence[sa.Row[Any]]]:
    """Batches of ``stmt``'s rows from one snapshot, through a server-side cursor.

    The rows are counted first, in the same snapshot, and a stream that ends with fewer
    raises ReadEndedEarlyError: whoever reads it (an analysis) would otherwise take every
    row it did not see as deleted.
    """
    with db.snapshot() as conn:
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


def stream_key_hashes(
    db: Database,
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
    # Checked now, not at the first next(): a bad table or column fails the call itself.
    if not key_columns:
        raise ConfigurationError(f"reading {table!r} from {db.name!r}: no key columns given")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    info = db.require_table(table)
    key_infos = _columns(db, info, key_columns)
    hashed_infos = _columns(db, info, hashed_columns)
    t = _table_clause(info, [*key_columns, *hashed_columns])
    keys = [t.c[n] for n in key_columns]
    hashed = [t.c[n] for n in hashed_columns]
    convert_key = _row_converter(db.dialect, key_infos)
    if db.dialect == "sqlite":
        stmt = sa.select(*keys, *hashed)
        return _python_hashes(db, table, stmt, len(keys), convert_key, batch_size)
    if db.dialect == "mysql":
        digest = _mysql_hash(hashed, hashed_infos)
    else:
        digest = _postgresql_hash(hashed)
    stmt = sa.select(*keys, digest)
    return _server_hashes(db, table, stmt, len(keys), convert_key, batch_size)


def _python_hashes(
    db: Database,
    table: str,
    stmt: sa.Select,
    n_keys: int,
    convert_key: Callable,
    batch_size: int,
) -> Iterator[list[tuple[tuple, str]]]:
    for batch in _stream(db, table, stmt, batch_size):
        yield [(convert_key(row[:n_keys]), python_row_hash(row[n_keys:])) for row in batch]


def _server_hashes(
    db: Database,
    table: str,
    stmt: sa.Select,
    n_keys: int,
    convert_key: Callable,
    batch_size: int,
) -> Iterator[list[tuple[tuple, str]]]:
    for batch in _stream(db, table, stmt, batch_size):
        out = []
        for row in batch:
            if row[n_keys] is None:
                # MySQL's CONCAT gives NULL past max_allowed_packet: never hash that as "".
                raise TerminalError(
                    f"table {table!r} of database {db.name!r}: key "
                    f"{encode_key(convert_key(row[:n_keys]))!r} is too large to hash on the "
                    "server; raise max_allowed_packet or hash fewer columns"
                )
            out.append((convert_key(row[:n_keys]), row[n_keys]))
        yield out


def stream_rows(
    db: Database, table: str, columns: Sequence[str], *, batch_size: int = 10_000
) -> Iterator[list[dict[str, Any]]]:
    """Batches of ``{column: value}`` for every row of ``table``, from one snapshot."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    info = db.require_table(table)
    infos = _columns(db, info, columns)
    t = _table_clause(info, columns)
    stmt = sa.select(*(t.c[n] for n in columns))
    convert = _row_converter(db.dialect, infos)
    return _dict_rows(db, table, stmt, list(columns), convert, batch_size)


def _dict_rows(
    db: Database,
    table: str,
    stmt: sa.Select,
    names: list[str],
    convert: Callable,
    batch_size: int,
) -> Iterator[list[dict[str, Any]]]:
    for batch in _stream(db, table, stmt, batch_size):
        yield [dict(zip(names, convert(row), strict=True)) for row in batch]


# --- fetch by key -----------------------------------------------------------------------


class _NoMatch(Exception):
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


def _bind_value(dialect: str, column: ColumnInfo, value: Any) -> Any:
    """A requested key value in the Python type the driver binds for this column.

    Keys may arrive typed (from a stream) or in their stored text form (ids.storage_values):
    "12.50", "2024-01-31T10:00:00", hex for bytes.
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
        raise _NoMatch from exc


def _identity(key: Sequence[Any]) -> tuple[str | None, ...]:
    # The exact identity of a key: each value's text (ids.value_text), NULL kept apart
    # from the text 'None'. Compared in Python, so no collation has a say. (Integers and
    # text, most keys, are their own str(): checked first, as this runs once a row.)
    return tuple(
        v if type(v) is str else str(v) if type(v) is int else None if v is None else value_text(v)
        for v in key
    )


def _key_condition(key_cols: list[sa.ColumnClause], chunk: list[tuple]) -> sa.ColumnElement:
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


def _key_conditions(
    key_cols: list[sa.ColumnClause], key_infos: Sequence[ColumnInfo], bound: list[tuple]
) -> Iterator[sa.ColumnElement]:
    """WHERE clauses that together read every row of the ``bound`` keys (and maybe more:
    callers keep only exact matches)."""
    dense = _dense_range(key_infos, bound)
    if dense is not None:
        yield key_cols[0].between(*dense)
        return
    for start in range(0, len(bound), FETCH_CHUNK):
        yield _key_condition(key_cols, bound[start : start + FETCH_CHUNK])


def _bound_keys(
    db: Database, key_infos: Sequence[ColumnInfo], keys: Sequence[tuple]
) -> tuple[set[tuple[str | None, ...]], list[tuple]]:
    """The keys asked for, as identities (to filter exact matches) and as bind values.

    Repeated keys are asked once; a key that cannot match the column's type is left out.
    """
    wanted: set[tuple[str | None, ...]] = set()
    bound: list[tuple] = []
    for key in keys:
        if len(key) != len(key_infos):
            raise ValueError(f"key {key!r} does not have {len(key_infos)} values")
        identity = _identity(key)
        if identity in wanted:
            continue
        try:
            values = tuple(
                _bind_value(db.dialect, c, v) for c, v in zip(key_infos, key, strict=True)
            )
        except _NoMatch:
            continue
        wanted.add(identity)
        bound.append(values)
    return wanted, bound


def fetch_rows(
    db: Database,
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
    if not key_columns:
        raise ConfigurationError(f"reading {table!r} from {db.name!r}: no key columns given")
    info = db.require_table(table)
    key_infos = _columns(db, info, key_columns)
    infos = _columns(db, info, columns)
    wanted, bound = _bound_keys(db, key_infos, keys)

    selected = list(dict.fromkeys([*key_columns, *columns]))
    t = _table_clause(info, selected)
    by_name = {c.name: c for c in [*key_infos, *infos]}
    convert = _row_converter(db.dialect, [by_name[n] for n in selected])
    key_cols = [t.c[n] for n in key_columns]
    key_at = [selected.index(n) for n in key_columns]
    column_at = [(n, selected.index(n)) for n in columns]
    found: dict[tuple, dict[str, Any]] = {}
    with db.connect() as conn:
        for where in _key_conditions(key_cols, key_infos, bound):
            stmt = sa.select(*(t.c[n] for n in selected)).where(where)
            for row in conn.execute(stmt).all():
                values = convert(row)
                key = tuple(values[i] for i in key_at)
                if _identity(key) in wanted:
                    found[key] = {n: values[i] for n, i in column_at}
    return found


# --- timestamp windows (detection: timestamp | hybrid) ----------------------------------
#
# The same content hash as ``stream_key_hashes`` (same expressions, same Python encoding),
# read for part of a table only: the rows of a timestamp window, or the rows of given keys.
# A row therefore has one hash whichever read found it, and the record map compares alike.


def _digest_select(
    db: Database, info: TableInfo, t: sa.TableClause, hashed_columns: Sequence[str]
) -> tuple[list[sa.ColumnElement], bool]:
    """The columns that give the hash: the server's digest, or (SQLite) the values to hash here."""
    infos = _columns(db, info, hashed_columns)
    hashed = [t.c[n] for n in hashed_columns]
    if db.dialect == "sqlite":
        return hashed, True
    if db.dialect == "mysql":
        return [_mysql_hash(hashed, infos)], False
    return [_postgresql_hash(hashed)], False


def _row_hash(db: Database, table: str, key: tuple, tail: Sequence[Any], in_python: bool) -> str:
    if in_python:
        return python_row_hash(tail)
    if tail[0] is None:
        # MySQL's CONCAT gives NULL past max_allowed_packet: never hash that as "".
        raise TerminalError(
            f"table {table!r} of database {db.name!r}: key {encode_key(key)!r} is too large "
            "to hash on the server; raise max_allowed_packet or hash fewer columns"
        )
    return tail[0]


def _key_after(keys: Sequence[sa.ColumnClause], values: Sequence[Any]) -> sa.ColumnElement:
    """``(k1, k2, …) > (v1, v2, …)`` written out, so every dialect (and index) understands it."""
    first, value = keys[0], values[0]
    if len(keys) == 1:
        return first > value
    return sa.or_(first > value, sa.and_(first == value, _key_after(keys[1:], values[1:])))


def _bind_cursor_value(db: Database, column: ColumnInfo, value: Any) -> Any:
    try:
        return _bind_value(db.dialect, column, value)
    except _NoMatch as exc:
        raise TerminalError(
            f"column {column.name!r} of database {db.name!r} cannot be compared with the "
            f"detection cursor value {value!r}",
            hint="Run once with --baseline to start the timestamp cursor again.",
        ) from exc


def stream_key_hashes_by_timestamp(
    db: Database,
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
    if not key_columns:
        raise ConfigurationError(f"reading {table!r} from {db.name!r}: no key columns given")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    info = db.require_table(table)
    key_infos = _columns(db, info, key_columns)
    ts_info = _columns(db, info, [timestamp_column])[0]
    t = _table_clause(info, [*key_columns, *hashed_columns, timestamp_column])
    keys = [t.c[n] for n in key_columns]
    ts = t.c[timestamp_column]
    digest, in_python = _digest_select(db, info, t, hashed_columns)
    stmt = sa.select(*keys, ts, *digest)
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
            start = sa.or_(ts > bound, sa.and_(ts == bound, _key_after(keys, bound_key)))
        stmt = stmt.where(sa.or_(ts.is_(None), start))
    # MySQL and SQLite sort NULL first in ascending order already; PostgreSQL must be told.
    stmt = stmt.order_by(ts.nulls_first() if db.dialect == "postgresql" else ts, *keys)
    n_keys = len(keys)
    convert_key = _row_converter(db.dialect, key_infos)
    convert_ts = _row_converter(db.dialect, [ts_info])

    def batches() -> Iterator[list[tuple[tuple, str, Any]]]:
        for batch in _stream(db, table, stmt, batch_size):
            out = []
            for row in batch:
                key = convert_key(row[:n_keys])
                content_hash = _row_hash(db, table, key, row[n_keys + 1 :], in_python)
                out.append((key, content_hash, convert_ts(row[n_keys : n_keys + 1])[0]))
            yield out

    return batches()


def fetch_key_hashes(
    db: Database,
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
    if not key_columns:
        raise ConfigurationError(f"reading {table!r} from {db.name!r}: no key columns given")
    info = db.require_table(table)
    key_infos = _columns(db, info, key_columns)
    wanted, bound = _bound_keys(db, key_infos, keys)
    t = _table_clause(info, [*key_columns, *hashed_columns])
    key_cols = [t.c[n] for n in key_columns]
    digest, in_python = _digest_select(db, info, t, hashed_columns)
    convert_key = _row_converter(db.dialect, key_infos)
    n_keys = len(key_cols)
    found: dict[tuple, str] = {}
    with db.connect() as conn:
        for where in _key_conditions(key_cols, key_infos, bound):
            for row in conn.execute(sa.select(*key_cols, *digest).where(where)):
                key = convert_key(row[:n_keys])
                if _identity(key) in wanted:
                    found[key] = _row_hash(db, table, key, row[n_keys:], in_python)
    return found
