"""The destination writer: idempotent upserts keyed by destination UUID, deletes, updates.

``TableWriter`` writes one destination table. Each call runs in one transaction that
commits before the control database records the batch (the two-commit protocol: a replay
writes the same rows). Upserts and the second pass's column updates are the dialects' own:
on PostgreSQL set-based, through a COPY stage (``load_postgresql``), on SQLite
``executemany`` statements (``load_sqlite``). Deletes, soft deletes and cleared columns are
one statement per batch on PostgreSQL (``… WHERE key = ANY(…)``), so that rows of one table
that reference each other go together, and one per row on SQLite.

A batch the database refuses as a whole (a foreign key, a NOT NULL, a CHECK, a value the
column cannot hold: a number out of range, a string too long) is written again in parts, in
savepoints, until the offending rows stand alone (``refusals``): only they fail, each with
the database's reason for that one row and, when the database names it, the column. A value
that cannot be sent at all (text with a NUL byte) fails its row before anything is written.
Only a lost connection stops the batch.

An upsert can also say which fields it changed (``changes``): the values each written row
held before, for the columns whose value the upsert changed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import load_postgresql, load_sqlite
from .changes import RawChanges
from .database import Database
from .errors import RowError
from .introspect import TableInfo
from .load_target import Row, Target, as_uuid, chunks
from .refusals import database_reason, find_refused
from .row_columns import RowColumns

__all__ = ["Row", "TableWriter"]


class TableWriter:
    """Writes one destination table; every call runs and commits its own transaction."""

    def __init__(self, database: Database, table: TableInfo, key_column: str) -> None:
        self.database = database
        self.table = table
        self.key_column = key_column
        self._target = Target.of(database, table, key_column)

    # -- upserts ---------------------------------------------------------------------------

    def upsert(
        self,
        rows: Sequence[Row],
        columns: Sequence[str],
        *,
        changes: dict[uuid.UUID, RawChanges] | None = None,
        fresh: bool = False,
    ) -> dict[uuid.UUID, RowError]:
        """``upsert_columns`` of ``rows``, each holding the key column and ``columns``."""
        batch = RowColumns.of_rows(rows, [self.key_column, *columns])
        return self.upsert_columns(batch, changes=changes, fresh=fresh)

    def upsert_columns(
        self,
        batch: RowColumns,
        *,
        changes: dict[uuid.UUID, RawChanges] | None = None,
        fresh: bool = False,
    ) -> dict[uuid.UUID, RowError]:
        """Insert or update the rows of ``batch``, whose first column is the key column.
        ``fresh``: the rows are believed new (no record of them), so that on PostgreSQL they
        are COPYed straight into the table, as long as none is there or refused already.

        Returns the rows the database refused, by UUID, each as a ``RowError`` (rule
        ``destination``) with the database's reason and the column when it names one; the
        others are committed. ``changes``, when given, is filled with every written row that
        existed before: its columns whose value differs from the one written, each as (before,
        after) as the database holds them (empty: the row was rewritten unchanged).
        """
        if not batch:
            return {}
        if batch.names[0] != self.key_column:
            raise ValueError(f"the batch's first column must be the key {self.key_column!r}")
        if self.database.dialect == "postgresql":
            return load_postgresql.upsert(self._target, batch, changes, fresh=fresh)
        return load_sqlite.upsert(self._target, batch, changes)

    # -- second pass of `reference: self`, and adoption (`match_on`) ---------------------------

    def update_columns(self, rows: Sequence[Row], columns: Sequence[str]) -> dict[uuid.UUID, str]:
        """Set ``columns`` of existing rows (each row holds the key column and ``columns``).

        Returns the rows the database refused (a foreign key, say), by UUID, with its
        reason; the others are committed.
        """
        if not rows or not columns:
            return {}
        writes = load_sqlite if self._target.is_sqlite else load_postgresql
        return writes.update_columns(
            self._target, RowColumns.of_rows(rows, [self.key_column, *columns])
        )

    def clear_columns(
        self, uuids: Sequence[uuid.UUID], columns: Sequence[str]
    ) -> dict[uuid.UUID, str]:
        """Set ``columns`` to NULL on these rows (so that rows pointing at each other can go)."""
        if not uuids or not columns:
            return {}
        sets = ", ".join(f"{self._target.quote(c)} = NULL" for c in columns)
        return self._by_keys(
            uuids, lambda where: f"UPDATE {self._target.qualified} SET {sets} WHERE {where}"
        )

    # -- deletes -----------------------------------------------------------------------------

    def delete(self, uuids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Hard-delete rows; rows the destination still references fail with the reason."""
        return self._by_keys(
            uuids, lambda where: f"DELETE FROM {self._target.qualified} WHERE {where}"
        )

    def soft_delete(
        self, uuids: Sequence[uuid.UUID], column: str, when: dt.datetime
    ) -> dict[uuid.UUID, str]:
        """Mark rows deleted by setting ``column`` (kept if already set)."""
        target = self._target
        quoted = target.quote(column)
        return self._by_keys(
            uuids,
            lambda where: (
                f"UPDATE {target.qualified} SET {quoted} = COALESCE({quoted}, {target.mark()}) "
                f"WHERE {where}"
            ),
            leading=(target.bindable(when),),
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
        target = self._target
        keys = list(uuids)
        key = target.quote(target.key_column)
        with target.connect() as conn:
            if target.is_sqlite:
                params = [(*leading, target.key_param(u)) for u in keys]
                refused = load_sqlite.write_each(conn, statement(f"{key} = ?"), params, again=True)
            else:
                many = statement(f"{key} = ANY(%s)")

                def attempt(part: Sequence[int]) -> None:
                    conn.exec_driver_sql(many, (*leading, [keys[i] for i in part]))

                refused = find_refused(conn, len(keys), attempt, again=True)
            conn.commit()
        return {keys[i]: database_reason(exc) for i, exc in refused.items()}

    # -- reads used by the runner --------------------------------------------------------------

    def owners_of_values(self, column: str, values: Iterable[Any]) -> dict[Any, uuid.UUID]:
        """For a `unique` rule: which destination record holds each value now."""
        target = self._target
        wanted = [target.bindable(v) for v in set(values) if v is not None]
        key, col = target.quote(target.key_column), target.quote(column)
        return {
            value: as_uuid(owner) for owner, value in target.select_in(f"{key}, {col}", col, wanted)
        }

    def existing_keys(self, uuids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these UUIDs have a row in the destination."""
        target = self._target
        key = target.quote(target.key_column)
        wanted = [target.key_param(u) for u in uuids]
        return {as_uuid(v) for (v,) in target.select_in(key, key, wanted)}

    def rows_matching(
        self, columns: Sequence[str], values: Iterable[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], list[uuid.UUID]]:
        """For ``match_on``: the destination rows whose ``columns`` equal each tuple of values.

        Keyed by the tuples asked for; a tuple that no row matches is absent. The database
        compares (after converting to the columns' types); a row comes back under a tuple
        only if its values are exactly that tuple, so a case-insensitive collation's near
        match is not taken for the same value.
        """
        target = self._target
        wanted = {tuple(target.bindable(v) for v in t): t for t in values}
        if not wanted or not columns:
            return {}
        quoted = [target.quote(c) for c in columns]
        select = ", ".join([target.quote(target.key_column), *quoted])
        one = "(" + " AND ".join(f"{c} = {target.mark()}" for c in quoted) + ")"
        found: dict[tuple[Any, ...], list[uuid.UUID]] = {}
        with target.connect() as conn:
            for chunk in chunks(list(wanted), 200):
                where = " OR ".join(one for _ in chunk)
                params = tuple(v for bound in chunk for v in bound)
                rows = conn.exec_driver_sql(
                    f"SELECT {select} FROM {target.qualified} WHERE {where}", params
                )
                for owner, *row in rows:
                    asked = wanted.get(tuple(target.bindable(v) for v in row))
                    if asked is not None:
                        found.setdefault(asked, []).append(as_uuid(owner))
        return found
