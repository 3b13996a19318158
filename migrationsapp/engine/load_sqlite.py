"""SQLite's writes (the embedded demo's destination): ``executemany`` statements.

A batch is one ``executemany``; a batch the database refuses is written again in halves, in
savepoints, until the offending rows stand alone (``refusals``). An upsert that reports its
changes (``changes``) first reads, in its own transaction, the rows that exist joined to the
batch's values, and which of their columns differ from the values about to be written.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from .changes import RawChanges
from .errors import RowError
from .load_target import Target, as_uuid, chunks, sqlite_value
from .refusals import database_reason, find_refused, row_refusal
from .row_columns import RowColumns

# SQLite binds at most 32,766 parameters per statement.
MAX_PARAMETERS = 30_000


def write_each(
    conn: sa.Connection, sql: str, params: Sequence[tuple[Any, ...]], *, again: bool = False
) -> dict[int, sa.exc.DBAPIError]:
    """``sql`` for every tuple of ``params``; those refused alone, by index, with the error
    (``refusals.find_refused``, ``again`` as there). The caller commits ``conn``."""
    return find_refused(
        conn,
        len(params),
        lambda part: conn.exec_driver_sql(sql, [params[i] for i in part]),
        again=again,
    )


def upsert(
    target: Target, batch: RowColumns, changes: dict[uuid.UUID, RawChanges] | None
) -> dict[uuid.UUID, RowError]:
    """``TableWriter.upsert`` on SQLite."""
    quoted = ", ".join(target.quote(c) for c in batch.names)
    marks = ", ".join("?" for _ in batch.names)
    sql = f"INSERT INTO {target.qualified} ({quoted}) VALUES ({marks}) " + target.on_conflict(
        batch.names
    )
    params = [tuple(sqlite_value(v) for v in row) for row in zip(*batch.values, strict=True)]
    with target.connect() as conn:
        before = _changes(target, conn, batch.names, params) if changes is not None else {}
        refused = write_each(conn, sql, params)
        conn.commit()
    keys = batch.values[0]  # the key column
    failures = {keys[i]: row_refusal(exc, batch.row(i), batch.names) for i, exc in refused.items()}
    if changes is not None:
        changes.update((u, found) for u, found in before.items() if u not in failures)
    return failures


def update_columns(target: Target, batch: RowColumns) -> dict[uuid.UUID, str]:
    """``TableWriter.update_columns`` on SQLite."""
    sets = ", ".join(f"{target.quote(c)} = ?" for c in batch.names[1:])
    sql = f"UPDATE {target.qualified} SET {sets} WHERE {target.quote(target.key_column)} = ?"
    params = [
        (*(sqlite_value(v) for v in row[1:]), target.key_param(row[0]))
        for row in zip(*batch.values, strict=True)
    ]
    with target.connect() as conn:
        refused = write_each(conn, sql, params)
        conn.commit()
    keys = batch.values[0]  # the key column
    return {keys[i]: database_reason(exc) for i, exc in refused.items()}


def _changes(
    target: Target, conn: sa.Connection, names: Sequence[str], params: Sequence[tuple[Any, ...]]
) -> dict[uuid.UUID, RawChanges]:
    """Before the upsert, in its transaction: the rows that exist, and which of their
    columns differ from the values about to be written. The batch's values are joined as
    a ``VALUES`` list, whose entries have no affinity, so SQLite compares them as the
    column would store them (``1.50`` in a NUMERIC column is ``1.5``)."""
    key, columns = names[0], list(names[1:])
    stored = [f"t.{target.quote(c)}" for c in columns]
    # SQLite's IS NOT is PostgreSQL's IS DISTINCT FROM (NULL-safe).
    flags = [f"(t.{target.quote(c)} IS NOT v.c{i + 1})" for i, c in enumerate(columns)]
    aliases = ", ".join(f"c{i}" for i in range(len(names)))
    per_row = "(" + ", ".join("?" for _ in names) + ")"
    found: dict[uuid.UUID, RawChanges] = {}
    for chunk in chunks(list(params), max(1, MAX_PARAMETERS // len(names))):
        sql = (
            f"WITH v({aliases}) AS (VALUES {', '.join(per_row for _ in chunk)}) "
            f"SELECT {', '.join([f't.{target.quote(key)}', *stored, *flags])} "
            f"FROM {target.qualified} AS t JOIN v ON t.{target.quote(key)} = v.c0"
        )
        written = {row[0]: row for row in chunk}
        for found_key, *rest in conn.exec_driver_sql(sql, tuple(v for r in chunk for v in r)):
            old, differs = rest[: len(columns)], rest[len(columns) :]
            new = written[found_key]
            pairs = {
                c: (_stored_value(target, c, old[i]), new[i + 1]) for i, c in enumerate(columns)
            }
            found[as_uuid(found_key)] = {
                c: pair
                for i, (c, pair) in enumerate(pairs.items())
                if differs[i] and not _same_value(target.kind(c), *pair)
            }
    return found


def _same_value(kind: str, before: Any, after: Any) -> bool:
    """SQLite compares JSON and timestamps as the text they are stored as: two texts of
    one document (its keys in another order) or of one instant (in another time zone)
    are the same value, as PostgreSQL would say."""
    if kind == "json" and isinstance(after, str):
        try:
            return before == json.loads(after)
        except ValueError:
            return False
    if kind in ("datetime", "datetime_tz") and isinstance(before, str) and isinstance(after, str):
        try:
            old, new = dt.datetime.fromisoformat(before), dt.datetime.fromisoformat(after)
        except ValueError:
            return False
        if (old.tzinfo is None) != (new.tzinfo is None):
            return False
        return old == new
    return False


def _stored_value(target: Target, column: str, value: Any) -> Any:
    """A value read back from SQLite: a JSON column's text as the document it holds."""
    if isinstance(value, str) and target.kind(column) == "json":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
