"""Destination writers: idempotent upserts keyed by destination UUID, and deletes.

PostgreSQL: a batch is encoded column by column into one COPY buffer (``copy_text``), COPYed
into a temporary staging table that has the destination columns' types, and merged with one
``INSERT … SELECT … ON CONFLICT (key) DO UPDATE``; deletes are one ``DELETE … WHERE key =
ANY(…)``, and the second pass's updates one ``UPDATE … FROM`` the stage. Each call runs in one
transaction that commits before the control database records the batch (the two-commit
protocol: a replay writes the same rows). SQLite: ``executemany`` statements.

A batch the database refuses as a whole (a foreign key, a NOT NULL, a CHECK, a value the
column cannot hold: a number out of range, a string too long) is written again in parts, in
savepoints, until the offending rows stand alone (``refusals``): only they fail, each with
the database's reason for that one row and, when the database names it, the column. A value
that cannot be sent at all (text with a NUL byte) fails its row before anything is written.
Only a lost connection stops the batch.

An upsert can also say which fields it changed (``changes``): on PostgreSQL the merge runs in
a ``WITH`` whose main query joins the stage to the table and compares each column ``IS
DISTINCT FROM`` its new value. Every part of one statement sees the table as it was before
the statement, so these are the values the upsert replaced, with no extra round trip; rows
without a match were inserted. On SQLite a ``SELECT`` joined to the batch's values runs just
before the upsert, in its transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from .changes import RawChanges
from .connectors import Database, TableInfo
from .copy_text import Dump, Encoded, encode_columns
from .errors import RowError
from .refusals import database_reason, find_refused, row_refusal

Row = Mapping[str, Any]

# The staging table's name: PostgreSQL's messages about a value COPY refused name it.
STAGE = "diffmig_stage"


class TableWriter:
    """Writes one destination table; every call runs and commits its own transaction."""

    def __init__(self, database: Database, table: TableInfo, key_column: str) -> None:
        self.database = database
        self.table = table
        self.key_column = key_column
        preparer = database.engine.dialect.identifier_preparer
        self._quote = preparer.quote
        self._qualified = (
            f"{self._quote(table.schema)}.{self._quote(table.name)}"
            if table.schema
            else self._quote(table.name)
        )

    # -- upserts ---------------------------------------------------------------------------

    def upsert(
        self,
        rows: Sequence[Row],
        columns: Sequence[str],
        *,
        changes: dict[uuid.UUID, RawChanges] | None = None,
    ) -> dict[uuid.UUID, RowError]:
        """Insert or update ``rows`` (each holding the key column and ``columns``).

        Returns the rows the database refused, by UUID, each as a ``RowError`` (rule
        ``destination``) with the database's reason and the column when it names one; the
        others are committed. ``changes``, when given, is filled with every written row that
        existed before: its columns whose value differs from the one written, each as (before,
        after) as the database holds them (empty: the row was rewritten unchanged).
        """
        if not rows:
            return {}
        names = [self.key_column, *columns]
        values = _columns_of(rows, names)
        if self.database.dialect == "postgresql":
            return self._upsert_postgresql(rows, names, values, changes)
        return self._upsert_generic(rows, names, values, changes)

    def _upsert_postgresql(
        self,
        rows: Sequence[Row],
        names: list[str],
        values: list[list[Any]],
        changes: dict[uuid.UUID, RawChanges] | None,
    ) -> dict[uuid.UUID, RowError]:
        key = self.key_column
        quoted = ", ".join(self._quote(c) for c in names)
        updates = ", ".join(
            f"{self._quote(c)} = EXCLUDED.{self._quote(c)}" for c in names if c != key
        )
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        merge = (
            f"INSERT INTO {self._qualified} ({quoted}) SELECT {quoted} FROM {self._quote(STAGE)} "
            f"ON CONFLICT ({self._quote(key)}) {action}"
        )
        columns = names[1:]
        collect = None
        if changes is not None:
            merge = self._merge_reporting_changes(merge, columns)

            def collect(result: sa.CursorResult) -> None:
                for found, flags, *pairs in result:
                    changes[_as_uuid(found)] = {
                        column: (pairs[2 * i], pairs[2 * i + 1])
                        for i, column in enumerate(columns)
                        if flags[i]
                    }

        with self._connect() as conn:
            encoded = self._encode(conn, names, values)
            failures = {
                rows[i][key]: RowError(
                    f"destination refused the row: {reason}",
                    field=column,
                    rule="destination",
                    value=rows[i].get(column),
                )
                for i, (column, reason) in encoded.refused.items()
            }
            sent = encoded.accepted()
            if sent:
                self._create_stage(conn, names)
                refused = find_refused(
                    conn,
                    len(sent),
                    self._staged(conn, encoded, sent, names, merge, collect),
                    stage=STAGE,
                )
                for index, exc in refused.items():
                    row = rows[sent[index]]
                    failures[row[key]] = row_refusal(exc, row, names)
            conn.commit()
        return failures

    def _merge_reporting_changes(self, merge: str, columns: Sequence[str]) -> str:
        """``merge`` in a ``WITH`` whose main query returns, for every staged row that the
        table holds already, its key, which columns differ (a boolean per column) and, for
        those, the value before and after. The main query sees the table as it was before
        the merge (one statement, one snapshot)."""
        key = self._quote(self.key_column)
        flags = [self._distinct(c) for c in columns]
        pairs = [
            f"CASE WHEN {flag} THEN {side}.{self._quote(c)} END"
            for c, flag in zip(columns, flags, strict=True)
            for side in ("t", "s")
        ]
        selected = ", ".join([f"t.{key}", f"ARRAY[{', '.join(flags)}]::boolean[]", *pairs])
        return (
            f"WITH merged AS ({merge}) SELECT {selected} FROM {self._qualified} AS t "
            f"JOIN {self._quote(STAGE)} AS s ON t.{key} = s.{key}"
        )

    def _distinct(self, column: str) -> str:
        """Whether the stored and the staged value of ``column`` differ, as PostgreSQL
        compares them (numbers by value, timestamps as instants). ``json`` has no equality
        and types we do not know may not either: those compare as jsonb and as text."""
        quoted = self._quote(column)
        info = self.table.column(column)
        kind = info.kind if info is not None else "other"
        cast = {"json": "::jsonb", "other": "::text"}.get(kind, "")
        return f"(t.{quoted}{cast} IS DISTINCT FROM s.{quoted}{cast})"

    def _upsert_generic(
        self,
        rows: Sequence[Row],
        names: list[str],
        values: list[list[Any]],
        changes: dict[uuid.UUID, RawChanges] | None,
    ) -> dict[uuid.UUID, RowError]:
        quoted = ", ".join(self._quote(c) for c in names)
        marks = ", ".join("?" for _ in names)
        updates = ", ".join(
            f"{self._quote(c)} = excluded.{self._quote(c)}" for c in names if c != self.key_column
        )
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        sql = (
            f"INSERT INTO {self._qualified} ({quoted}) VALUES ({marks}) "
            f"ON CONFLICT ({self._quote(self.key_column)}) {action}"
        )
        params = [tuple(_sqlite_value(v) for v in row) for row in zip(*values, strict=True)]
        with self._connect() as conn:
            before = self._changes_sqlite(conn, names, params) if changes is not None else {}
            refused = find_refused(
                conn, len(params), lambda part: conn.exec_driver_sql(sql, [params[i] for i in part])
            )
            conn.commit()
        failures = {
            rows[i][self.key_column]: row_refusal(exc, rows[i], names) for i, exc in refused.items()
        }
        if changes is not None:
            changes.update((u, found) for u, found in before.items() if u not in failures)
        return failures

    def _changes_sqlite(
        self, conn: sa.Connection, names: Sequence[str], params: Sequence[tuple[Any, ...]]
    ) -> dict[uuid.UUID, RawChanges]:
        """Before the upsert, in its transaction: the rows that exist, and which of their
        columns differ from the values about to be written. The batch's values are joined as
        a ``VALUES`` list, whose entries have no affinity, so SQLite compares them as the
        column would store them (``1.50`` in a NUMERIC column is ``1.5``)."""
        key, columns = names[0], list(names[1:])
        stored = [f"t.{self._quote(c)}" for c in columns]
        # SQLite's IS NOT is PostgreSQL's IS DISTINCT FROM (NULL-safe).
        flags = [f"(t.{self._quote(c)} IS NOT v.c{i + 1})" for i, c in enumerate(columns)]
        aliases = ", ".join(f"c{i}" for i in range(len(names)))
        per_row = "(" + ", ".join("?" for _ in names) + ")"
        found: dict[uuid.UUID, RawChanges] = {}
        # SQLite binds at most 32,766 parameters per statement.
        for chunk in _chunks(list(params), max(1, 30_000 // len(names))):
            sql = (
                f"WITH v({aliases}) AS (VALUES {', '.join(per_row for _ in chunk)}) "
                f"SELECT {', '.join([f't.{self._quote(key)}', *stored, *flags])} "
                f"FROM {self._qualified} AS t JOIN v ON t.{self._quote(key)} = v.c0"
            )
            written = {row[0]: row for row in chunk}
            for found_key, *rest in conn.exec_driver_sql(sql, tuple(v for r in chunk for v in r)):
                old, differs = rest[: len(columns)], rest[len(columns) :]
                new = written[found_key]
                pairs = {
                    c: (self._stored_value(c, old[i]), new[i + 1]) for i, c in enumerate(columns)
                }
                found[_as_uuid(found_key)] = {
                    c: pair
                    for i, (c, pair) in enumerate(pairs.items())
                    if differs[i] and not self._same_sqlite_value(c, *pair)
                }
        return found

    def _same_sqlite_value(self, column: str, before: Any, after: Any) -> bool:
        """SQLite compares JSON and timestamps as the text they are stored as: two texts of
        one document (its keys in another order) or of one instant (in another time zone)
        are the same value, as PostgreSQL would say."""
        info = self.table.column(column)
        kind = info.kind if info is not None else "other"
        if kind == "json" and isinstance(after, str):
            try:
                return before == json.loads(after)
            except ValueError:
                return False
        if (
            kind in ("datetime", "datetime_tz")
            and isinstance(before, str)
            and isinstance(after, str)
        ):
            try:
                old, new = dt.datetime.fromisoformat(before), dt.datetime.fromisoformat(after)
            except ValueError:
                return False
            if (old.tzinfo is None) != (new.tzinfo is None):
                return False
            return old == new
        return False

    def _stored_value(self, column: str, value: Any) -> Any:
        """A value read back from SQLite: a JSON column's text as the document it holds."""
        info = self.table.column(column)
        if isinstance(value, str) and info is not None and info.kind == "json":
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    # -- the PostgreSQL stage ------------------------------------------------------------------

    def _encode(self, conn: sa.Connection, names: Sequence[str], values: Sequence[Any]) -> Encoded:
        json_columns = frozenset(
            c for c in names if (info := self.table.column(c)) is not None and info.kind == "json"
        )
        count = len(values[0]) if values else 0
        return encode_columns(
            names,
            values,
            count=count,
            json_columns=json_columns,
            dump=_psycopg_dump(conn.connection.driver_connection),
        )

    def _create_stage(self, conn: sa.Connection, names: Sequence[str]) -> None:
        """A temporary table with the written columns' types (typmods and domains too), so
        that COPY converts each value exactly as the destination would and names the row and
        column of a value it refuses; dropped at commit."""
        quoted = ", ".join(self._quote(c) for c in names)
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {self._quote(STAGE)} ON COMMIT DROP AS "
            f"SELECT {quoted} FROM {self._qualified} WITH NO DATA"
        )

    def _staged(
        self,
        conn: sa.Connection,
        encoded: Encoded,
        sent: Sequence[int],
        names: Sequence[str],
        statement: str,
        collect: Callable[[sa.CursorResult], None] | None = None,
    ) -> Callable[[Sequence[int]], None]:
        """An attempt for ``find_refused``: COPY a part of the batch into the stage, run the
        set-based ``statement`` from it (its result to ``collect``, when given), and empty the
        stage for the next part (in the same savepoint, so that a refused part leaves it empty
        too)."""
        raw = conn.connection.driver_connection
        copy_sql = (
            f"COPY {self._quote(STAGE)} ({', '.join(self._quote(c) for c in names)}) FROM STDIN"
        )
        total = len(sent)

        def attempt(part: Sequence[int]) -> None:
            data = encoded.lines(sent if len(part) == total else [sent[i] for i in part])
            try:
                with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                    copy.write(data)
            except self._driver_error as exc:
                # The raw COPY is not SQLAlchemy's: wrap its error like every other statement's
                # (a DataError for a value the column cannot hold, an OperationalError for a
                # lost connection), so that row errors are told from the rest in one place.
                raise sa.exc.DBAPIError.instance(
                    copy_sql, None, exc, self._driver_error, hide_parameters=True
                ) from exc
            result = conn.exec_driver_sql(statement)
            if collect is not None:
                collect(result)
            if len(part) < total:  # more parts follow; the whole batch ends at once
                conn.exec_driver_sql(f"TRUNCATE {self._quote(STAGE)}")

        return attempt

    # -- reads used by the runner --------------------------------------------------------------

    def owners_of_values(self, column: str, values: Iterable[Any]) -> dict[Any, uuid.UUID]:
        """For a `unique` rule: which destination record holds each value now."""
        wanted = [v for v in set(values) if v is not None]
        found: dict[Any, uuid.UUID] = {}
        key, col = self._quote(self.key_column), self._quote(column)
        with self._connect() as conn:
            for chunk in _chunks(wanted, 1000):
                marks = ", ".join(self._mark() for _ in chunk)
                params = tuple(_sqlite_value(v) for v in chunk) if self._is_sqlite else tuple(chunk)
                rows = conn.exec_driver_sql(
                    f"SELECT {key}, {col} FROM {self._qualified} WHERE {col} IN ({marks})", params
                )
                for owner, value in rows:
                    found[value] = _as_uuid(owner)
        return found

    def existing_keys(self, uuids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these UUIDs have a row in the destination."""
        wanted = list(uuids)
        found: set[uuid.UUID] = set()
        key = self._quote(self.key_column)
        with self._connect() as conn:
            for chunk in _chunks(wanted, 1000):
                marks = ", ".join(self._mark() for _ in chunk)
                params = tuple(self._key_param(u) for u in chunk)
                rows = conn.exec_driver_sql(
                    f"SELECT {key} FROM {self._qualified} WHERE {key} IN ({marks})", params
                )
                found.update(_as_uuid(v) for (v,) in rows)
        return found

    # -- deletes -----------------------------------------------------------------------------

    def delete(self, uuids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Hard-delete rows; rows the destination still references fail with the reason."""
        return self._by_keys(uuids, lambda where: f"DELETE FROM {self._qualified} WHERE {where}")

    def soft_delete(
        self, uuids: Sequence[uuid.UUID], column: str, when: dt.datetime
    ) -> dict[uuid.UUID, str]:
        """Mark rows deleted by setting ``column`` (kept if already set)."""
        quoted = self._quote(column)
        return self._by_keys(
            uuids,
            lambda where: (
                f"UPDATE {self._qualified} SET {quoted} = COALESCE({quoted}, {self._mark()}) "
                f"WHERE {where}"
            ),
            leading=(self._bindable(when),),
        )

    def _by_keys(
        self,
        uuids: Sequence[uuid.UUID],
        statement: Callable[[str], str],
        leading: tuple[Any, ...] = (),
    ) -> dict[uuid.UUID, str]:
        """Run ``statement(where)`` on these rows (``where`` picks them by key; ``leading``
        are its parameters before the keys'): on PostgreSQL one
        statement for the batch, so that rows of one table that reference each other go
        together; refused rows are found in parts, and tried again once others went."""
        if not uuids:
            return {}
        keys = list(uuids)
        key = self._quote(self.key_column)
        with self._connect() as conn:
            if self._is_sqlite:
                one = statement(f"{key} = ?")
                params = [(*leading, self._key_param(u)) for u in keys]

                def attempt(part: Sequence[int]) -> None:
                    conn.exec_driver_sql(one, [params[i] for i in part])

            else:
                many = statement(f"{key} = ANY(%s)")

                def attempt(part: Sequence[int]) -> None:
                    conn.exec_driver_sql(many, (*leading, [keys[i] for i in part]))

            refused = find_refused(conn, len(keys), attempt, again=True)
            conn.commit()
        return {keys[i]: database_reason(exc) for i, exc in refused.items()}

    # -- second pass of `reference: self`, and adoption (`match_on`) ---------------------------

    def update_columns(self, rows: Sequence[Row], columns: Sequence[str]) -> dict[uuid.UUID, str]:
        """Set ``columns`` of existing rows (each row holds the key column and ``columns``).

        Returns the rows the database refused (a foreign key, say), by UUID, with its
        reason; the others are committed.
        """
        if not rows or not columns:
            return {}
        key = self.key_column
        names = [key, *columns]
        values = _columns_of(rows, names)
        if self._is_sqlite:
            sets = ", ".join(f"{self._quote(c)} = ?" for c in columns)
            sql = f"UPDATE {self._qualified} SET {sets} WHERE {self._quote(key)} = ?"
            params = [
                (*(_sqlite_value(v) for v in row[1:]), self._key_param(row[0]))
                for row in zip(*values, strict=True)
            ]
            with self._connect() as conn:
                refused = find_refused(
                    conn,
                    len(params),
                    lambda part: conn.exec_driver_sql(sql, [params[i] for i in part]),
                )
                conn.commit()
            return {rows[i][key]: database_reason(exc) for i, exc in refused.items()}
        sets = ", ".join(f"{self._quote(c)} = s.{self._quote(c)}" for c in columns)
        statement = (
            f"UPDATE {self._qualified} AS t SET {sets} FROM {self._quote(STAGE)} AS s "
            f"WHERE t.{self._quote(key)} = s.{self._quote(key)}"
        )
        with self._connect() as conn:
            encoded = self._encode(conn, names, values)
            failures = {
                rows[i][key]: f"destination refused the row: {reason} ({column})"
                for i, (column, reason) in encoded.refused.items()
            }
            sent = encoded.accepted()
            if sent:
                self._create_stage(conn, names)
                refused = find_refused(
                    conn,
                    len(sent),
                    self._staged(conn, encoded, sent, names, statement),
                    stage=STAGE,
                )
                failures.update(
                    (rows[sent[i]][key], database_reason(e)) for i, e in refused.items()
                )
            conn.commit()
        return failures

    def clear_columns(
        self, uuids: Sequence[uuid.UUID], columns: Sequence[str]
    ) -> dict[uuid.UUID, str]:
        """Set ``columns`` to NULL on these rows (so that rows pointing at each other can go)."""
        if not uuids or not columns:
            return {}
        sets = ", ".join(f"{self._quote(c)} = NULL" for c in columns)
        return self._by_keys(
            uuids, lambda where: f"UPDATE {self._qualified} SET {sets} WHERE {where}"
        )

    def rows_matching(
        self, columns: Sequence[str], values: Iterable[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], list[uuid.UUID]]:
        """For ``match_on``: the destination rows whose ``columns`` equal each tuple of values.

        Keyed by the tuples asked for; a tuple that no row matches is absent. The database
        compares (after converting to the columns' types); a row comes back under a tuple
        only if its values are exactly that tuple, so a case-insensitive collation's near
        match is not taken for the same value.
        """
        wanted = {tuple(self._bindable(v) for v in t): t for t in values}
        if not wanted or not columns:
            return {}
        quoted = [self._quote(c) for c in columns]
        select = ", ".join([self._quote(self.key_column), *quoted])
        one = "(" + " AND ".join(f"{c} = {self._mark()}" for c in quoted) + ")"
        found: dict[tuple[Any, ...], list[uuid.UUID]] = {}
        with self._connect() as conn:
            for chunk in _chunks(list(wanted), 200):
                where = " OR ".join(one for _ in chunk)
                params = tuple(v for bound in chunk for v in bound)
                rows = conn.exec_driver_sql(
                    f"SELECT {select} FROM {self._qualified} WHERE {where}", params
                )
                for owner, *row in rows:
                    asked = wanted.get(tuple(self._bindable(v) for v in row))
                    if asked is not None:
                        found.setdefault(asked, []).append(_as_uuid(owner))
        return found

    def _bindable(self, value: Any) -> Any:
        return _sqlite_value(value) if self._is_sqlite else value

    # -- helpers -----------------------------------------------------------------------------

    @property
    def _driver_error(self) -> type[Exception]:
        """The DB-API driver's base error class (psycopg's ``Error`` on PostgreSQL)."""
        return self.database.engine.dialect.loaded_dbapi.Error

    @property
    def _is_sqlite(self) -> bool:
        return self.database.dialect == "sqlite"

    def _mark(self) -> str:
        return "?" if self._is_sqlite else "%s"

    def _key_param(self, value: uuid.UUID) -> Any:
        return str(value) if self._is_sqlite else value

    def _connect(self) -> sa.Connection:
        conn = self.database.engine.connect()
        if self._is_sqlite:
            # SQLite enforces foreign keys only when asked, per connection, outside a transaction.
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
        return conn


def _columns_of(rows: Sequence[Row], names: Sequence[str]) -> list[Sequence[Any]]:
    """The rows' values a column at a time (a row without a column holds NULL there)."""
    if len(names) == 1:
        return [[row.get(names[0]) for row in rows]]
    try:
        # itemgetter and zip transpose in C: no Python step per value.
        return list(zip(*map(itemgetter(*names), rows), strict=True))
    except KeyError:
        return [[row.get(c) for row in rows] for c in names]


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _sqlite_value(value: Any) -> Any:
    """Python values SQLite's driver cannot bind, as the text the schema expects."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def _psycopg_dump(raw: Any) -> Dump:
    """Text for a value of a type ``copy_text`` does not know, by psycopg's adapters (those
    of this connection): arrays, intervals, ranges … A value it cannot adapt refuses its row."""
    from psycopg.adapt import PyFormat, Transformer

    transformer = Transformer(raw)

    def dump(value: Any) -> str:
        try:
            data = transformer.get_dumper(value, PyFormat.TEXT).dump(value)
        except Exception as exc:  # psycopg's ProgrammingError, or the adapter's own
            raise TypeError(f"cannot write {type(value).__name__}: {exc}") from exc
        return bytes(data or b"").decode("utf-8")

    return dump
