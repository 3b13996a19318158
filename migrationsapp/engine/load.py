"""Destination writers: idempotent upserts keyed by destination UUID, and deletes.

PostgreSQL: the batch is COPYed into a temporary table and merged with
``INSERT … ON CONFLICT (key) DO UPDATE``, in one transaction that commits before the control
database records the batch (the two-commit protocol: a replay writes the same rows).
SQLite: an ``executemany`` upsert. A batch the database refuses as a whole (a foreign key,
a NOT NULL, a value the column cannot hold: text with a NUL byte, a number out of range, a
string too long) is retried row by row in savepoints so that only the offending rows fail,
each with the database's reason and, when the database names it, the column. Errors from
the driver's COPY (which SQLAlchemy does not wrap) are treated the same way; only a lost
connection stops the batch.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from .connectors import Database, TableInfo
from .errors import RowError

Row = Mapping[str, Any]


class DestinationWriter:
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

    def upsert(self, rows: Sequence[Row], columns: Sequence[str]) -> dict[uuid.UUID, RowError]:
        """Insert or update ``rows`` (each holding the key column and ``columns``).

        Returns the rows the database refused, by UUID, each as a ``RowError`` (rule
        ``destination``) with the database's reason and the column when it names one; the
        others are committed.
        """
        if not rows:
            return {}
        all_columns = [self.key_column, *columns]
        try:
            with self._connect() as conn:
                self._upsert_rows(conn, rows, all_columns)
                conn.commit()
            return {}
        except sa.exc.DBAPIError as exc:
            if not _is_row_error(exc):
                raise
        # The batch as a whole was refused: find the rows at fault, one savepoint each.
        failures: dict[uuid.UUID, RowError] = {}
        with self._connect() as conn:
            for row in rows:
                savepoint = conn.begin_nested()
                try:
                    self._upsert_rows(conn, [row], all_columns)
                    savepoint.commit()
                except sa.exc.DBAPIError as exc:
                    savepoint.rollback()
                    if not _is_row_error(exc):
                        raise
                    failures[row[self.key_column]] = _refusal(exc, row, all_columns)
            conn.commit()
        return failures

    def _upsert_rows(self, conn: sa.Connection, rows: Sequence[Row], columns: list[str]) -> None:
        if self.database.dialect == "postgresql":
            self._upsert_postgresql(conn, rows, columns)
        else:
            self._upsert_generic(conn, rows, columns)

    def _upsert_postgresql(
        self, conn: sa.Connection, rows: Sequence[Row], columns: list[str]
    ) -> None:
        quoted = ", ".join(self._quote(c) for c in columns)
        stage = self._quote("diffmig_stage")
        # LIKE copies the column types, so COPY converts every value exactly as the target would.
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{stage}")
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {stage} (LIKE {self._qualified} INCLUDING DEFAULTS) "
            "ON COMMIT DROP"
        )
        raw = conn.connection.driver_connection
        copy_sql = f"COPY {stage} ({quoted}) FROM STDIN"
        try:
            with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row([row.get(c) for c in columns])
        except self._driver_error as exc:
            # The raw COPY is not SQLAlchemy's: wrap its error like every other statement's
            # (a DataError for a value the column cannot hold, an OperationalError for a lost
            # connection), so the caller tells row errors from the rest in one place.
            raise sa.exc.DBAPIError.instance(
                copy_sql, None, exc, self._driver_error, hide_parameters=True
            ) from exc
        updates = ", ".join(
            f"{self._quote(c)} = EXCLUDED.{self._quote(c)}" for c in columns if c != self.key_column
        )
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        conn.exec_driver_sql(
            f"INSERT INTO {self._qualified} ({quoted}) SELECT {quoted} FROM {stage} "
            f"ON CONFLICT ({self._quote(self.key_column)}) {action}"
        )
        conn.exec_driver_sql(f"DROP TABLE {stage}")

    def _upsert_generic(self, conn: sa.Connection, rows: Sequence[Row], columns: list[str]) -> None:
        quoted = ", ".join(self._quote(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(
            f"{self._quote(c)} = excluded.{self._quote(c)}" for c in columns if c != self.key_column
        )
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        sql = (
            f"INSERT INTO {self._qualified} ({quoted}) VALUES ({marks}) "
            f"ON CONFLICT ({self._quote(self.key_column)}) {action}"
        )
        params = [tuple(_sqlite_value(row.get(c)) for c in columns) for row in rows]
        conn.exec_driver_sql(sql, params)

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
        return self._apply_each(uuids, self._delete_sql())

    def soft_delete(
        self, uuids: Sequence[uuid.UUID], column: str, when: dt.datetime
    ) -> dict[uuid.UUID, str]:
        """Mark rows deleted by setting ``column`` (kept if already set)."""
        sql = (
            f"UPDATE {self._qualified} SET {self._quote(column)} = COALESCE({self._quote(column)}, "
            f"{self._mark()}) WHERE {self._quote(self.key_column)} = {self._mark()}"
        )
        value = _sqlite_value(when) if self._is_sqlite else when
        return self._apply_each(uuids, sql, leading=(value,))

    def _delete_sql(self) -> str:
        return (
            f"DELETE FROM {self._qualified} WHERE {self._quote(self.key_column)} = {self._mark()}"
        )

    def _apply_each(
        self, uuids: Sequence[uuid.UUID], sql: str, leading: tuple[Any, ...] = ()
    ) -> dict[uuid.UUID, str]:
        # One statement-set for the batch: rows of one table that reference each other go
        # together, and foreign keys are checked once all are gone.
        if not uuids:
            return {}
        params = [(*leading, self._key_param(u)) for u in uuids]
        return self._execute_each(list(uuids), params, sql)

    # -- second pass of `reference: self`, and adoption (`match_on`) ---------------------------

    def update_columns(self, rows: Sequence[Row], columns: Sequence[str]) -> dict[uuid.UUID, str]:
        """Set ``columns`` of existing rows (each row holds the key column and ``columns``).

        Returns the rows the database refused (a foreign key, say), by UUID, with its
        reason; the others are committed.
        """
        if not rows or not columns:
            return {}
        sets = ", ".join(f"{self._quote(c)} = {self._mark()}" for c in columns)
        sql = (
            f"UPDATE {self._qualified} SET {sets} "
            f"WHERE {self._quote(self.key_column)} = {self._mark()}"
        )
        keys = [row[self.key_column] for row in rows]
        params = [
            (*(self._bindable(row.get(c)) for c in columns), self._key_param(row[self.key_column]))
            for row in rows
        ]
        return self._execute_each(keys, params, sql)

    def clear_columns(
        self, uuids: Sequence[uuid.UUID], columns: Sequence[str]
    ) -> dict[uuid.UUID, str]:
        """Set ``columns`` to NULL on these rows (so that rows pointing at each other can go)."""
        if not uuids or not columns:
            return {}
        sets = ", ".join(f"{self._quote(c)} = NULL" for c in columns)
        sql = (
            f"UPDATE {self._qualified} SET {sets} "
            f"WHERE {self._quote(self.key_column)} = {self._mark()}"
        )
        return self._execute_each(list(uuids), [(self._key_param(u),) for u in uuids], sql)

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

    def _execute_each(
        self, keys: Sequence[uuid.UUID], params: Sequence[tuple[Any, ...]], sql: str
    ) -> dict[uuid.UUID, str]:
        """Run ``sql`` once per parameter tuple in one transaction; if the database refuses
        the whole, again row by row in savepoints, so only the offending rows fail."""
        try:
            with self._connect() as conn:
                conn.exec_driver_sql(sql, list(params))
                conn.commit()
            return {}
        except sa.exc.DBAPIError as exc:
            if not _is_row_error(exc):
                raise
        failures: dict[uuid.UUID, str] = {}
        with self._connect() as conn:
            for key, param in zip(keys, params, strict=True):
                savepoint = conn.begin_nested()
                try:
                    conn.exec_driver_sql(sql, param)
                    savepoint.commit()
                except sa.exc.DBAPIError as exc:
                    savepoint.rollback()
                    if not _is_row_error(exc):
                        raise
                    failures[key] = _database_reason(exc)
            conn.commit()
        return failures

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


def _is_row_error(exc: sa.exc.DBAPIError) -> bool:
    """True for errors a single row can cause (constraint, data); False for lost connections."""
    if exc.connection_invalidated:
        return False
    return isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError) or (
        "constraint" in str(exc.orig).lower()
    )


def _database_reason(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig).strip().splitlines()
    return "destination refused the row: " + " ".join(line.strip() for line in text[:2])


# PostgreSQL names the column of a value COPY could not take in the error's context line:
# 'COPY diffmig_stage, line 1, column salary: "1e9"'.
_COPY_COLUMN = re.compile(r"COPY [^,]+, line \d+, column ([^:\s]+)")


def _refused_column(exc: sa.exc.DBAPIError, row: Row, columns: Sequence[str]) -> str | None:
    """The destination column the database blamed, when it says (None: it does not)."""
    diag = getattr(exc.orig, "diag", None)
    named = getattr(diag, "column_name", None)  # NOT NULL violations name it
    if named in columns:
        return named
    match = _COPY_COLUMN.search(getattr(diag, "context", None) or str(exc.orig))
    if match and match.group(1).strip('"') in columns:
        return match.group(1).strip('"')
    if "NUL (0x00)" in str(exc.orig):
        # Refused by the driver before it reached the server: the text value with the NUL.
        return next((c for c in columns if _has_nul(row.get(c))), None)
    return None


def _has_nul(value: Any) -> bool:
    return isinstance(value, str) and "\x00" in value


def _refusal(exc: sa.exc.DBAPIError, row: Row, columns: Sequence[str]) -> RowError:
    """One refused row as the error it is quarantined with: the reason, and the column."""
    column = _refused_column(exc, row, columns)
    return RowError(
        _database_reason(exc),
        field=column,
        rule="destination",
        value=None if column is None else row.get(column),
    )
