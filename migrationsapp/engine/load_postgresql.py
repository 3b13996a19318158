"""PostgreSQL's set-based writes: a batch COPYed into a stage, then one statement from it.

A batch of rows believed new (``fresh``: a baseline's, no record of any) is first COPYed
straight into the table, which checks its keys, foreign keys and constraints as the upsert
would; should any row be there already or be refused, that transaction is taken back and
the batch goes the stage's way below, which upserts and tells the refused rows apart.

A batch is encoded column by column into one COPY buffer (``copy_text``), COPYed into a
temporary staging table that has the destination columns' types, and written by one
statement from the stage: the upsert's ``INSERT … SELECT … ON CONFLICT (key) DO UPDATE``,
or the second pass's ``UPDATE … FROM``. A value that cannot be sent at all (text with a NUL
byte) fails its row before anything is written; a part of the batch the database refuses is
written again in halves, in savepoints, until the offending rows stand alone
(``refusals``), the stage emptied between parts.

An upsert can also say which fields it changed (``changes``): the merge runs in a ``WITH``
whose main query looks each staged row's stored row up by key (an index probe per row, so
that the cost follows the batch, not the table) and compares each column ``IS DISTINCT
FROM`` its new value. Every part of one statement sees the table as it was before the statement,
so these are the values the upsert replaced, with no extra round trip; rows without a match
were inserted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa

from .changes import RawChanges
from .copy_text import Dump, Encoded, encode_columns
from .errors import RowError
from .load_target import Target, as_uuid
from .refusals import Attempt, database_reason, find_refused, row_refusal
from .row_columns import RowColumns

# The staging table's name: PostgreSQL's messages about a value COPY refused name it.
STAGE = "diffmig_stage"

log = logging.getLogger(__name__)

Collect = Callable[[sa.CursorResult], None]


def upsert(
    target: Target,
    batch: RowColumns,
    changes: dict[uuid.UUID, RawChanges] | None,
    *,
    fresh: bool = False,
) -> dict[uuid.UUID, RowError]:
    """``TableWriter.upsert_columns`` on PostgreSQL."""
    if fresh and changes is None and _copied_straight(target, batch):
        return {}
    quoted = ", ".join(target.quote(c) for c in batch.names)
    merge = (
        f"INSERT INTO {target.qualified} ({quoted}) SELECT {quoted} FROM {target.quote(STAGE)} "
        + target.on_conflict(batch.names)
    )
    collect = None
    if changes is not None:
        merge = _merge_reporting_changes(target, merge, batch.names[1:])
        collect = _collect_changes(batch.names[1:], changes)
    unsendable, refused = _write_staged(target, batch, merge, collect)
    keys = batch.values[0]  # the key column
    failures = {
        keys[i]: RowError(
            f"destination refused the row: {reason}",
            field=column,
            rule="destination",
            value=batch.column(column)[i],
        )
        for i, (column, reason) in unsendable.items()
    }
    failures.update(
        (keys[i], row_refusal(exc, batch.row(i), batch.names)) for i, exc in refused.items()
    )
    return failures


def update_columns(target: Target, batch: RowColumns) -> dict[uuid.UUID, str]:
    """``TableWriter.update_columns`` on PostgreSQL."""
    key = target.quote(target.key_column)
    sets = ", ".join(f"{target.quote(c)} = s.{target.quote(c)}" for c in batch.names[1:])
    statement = (
        f"UPDATE {target.qualified} AS t SET {sets} FROM {target.quote(STAGE)} AS s "
        f"WHERE t.{key} = s.{key}"
    )
    unsendable, refused = _write_staged(target, batch, statement)
    keys = batch.values[0]  # the key column
    failures = {
        keys[i]: f"destination refused the row: {reason} ({column})"
        for i, (column, reason) in unsendable.items()
    }
    failures.update((keys[i], database_reason(e)) for i, e in refused.items())
    return failures


# -- changes ------------------------------------------------------------------------------------


def _merge_reporting_changes(target: Target, merge: str, columns: Sequence[str]) -> str:
    """``merge`` in a ``WITH`` whose main query returns, for every staged row that the
    table holds already, its key, which columns differ (a boolean per column) and, for
    those, the value before and after. The main query sees the table as it was before
    the merge (one statement, one snapshot)."""
    key = target.quote(target.key_column)
    flags = [_distinct(target, c) for c in columns]
    pairs = [
        f"CASE WHEN {flag} THEN {side}.{target.quote(c)} END"
        for c, flag in zip(columns, flags, strict=True)
        for side in ("t", "s")
    ]
    selected = ", ".join([f"t.{key}", f"ARRAY[{', '.join(flags)}]::boolean[]", *pairs])
    before = ", ".join(target.quote(c) for c in [target.key_column, *columns])
    # Each staged row looks its stored row up by key (OFFSET 0 keeps the subquery apart, so
    # it runs as one index probe per staged row): a join the planner may choose to hash
    # would read the whole table for every batch, a cost that grows with the table.
    return (
        f"WITH merged AS ({merge}) SELECT {selected} FROM {target.quote(STAGE)} AS s "
        f"JOIN LATERAL (SELECT {before} FROM {target.qualified} AS stored "
        f"WHERE stored.{key} = s.{key} OFFSET 0) AS t ON true"
    )


def _distinct(target: Target, column: str) -> str:
    """Whether the stored and the staged value of ``column`` differ, as PostgreSQL
    compares them (numbers by value, timestamps as instants). ``json`` has no equality
    and types we do not know may not either: those compare as jsonb and as text."""
    quoted = target.quote(column)
    cast = {"json": "::jsonb", "other": "::text"}.get(target.kind(column), "")
    return f"(t.{quoted}{cast} IS DISTINCT FROM s.{quoted}{cast})"


def _collect_changes(columns: Sequence[str], changes: dict[uuid.UUID, RawChanges]) -> Collect:
    """Reads the rows ``_merge_reporting_changes``'s query returns into ``changes``."""

    def collect(result: sa.CursorResult) -> None:
        for found, flags, *pairs in result:
            changes[as_uuid(found)] = {
                column: (pairs[2 * i], pairs[2 * i + 1])
                for i, column in enumerate(columns)
                if flags[i]
            }

    return collect


# -- the stage ----------------------------------------------------------------------------------


def _copied_straight(target: Target, batch: RowColumns) -> bool:
    """COPY rows believed new straight into the table, in a transaction that commits:
    whether it did. A row the table holds already (a batch replayed after a crash), a row
    it refuses or a value that cannot be sent takes the whole COPY back, and the batch then
    goes through the stage, which upserts and names each refused row."""
    with target.connect() as conn:
        encoded = _encode(target, conn, batch.names, batch.values)
        if encoded.refused:
            return False
        raw = conn.connection.driver_connection
        quoted = ", ".join(target.quote(c) for c in batch.names)
        copy_sql = f"COPY {target.qualified} ({quoted}) FROM STDIN"
        try:
            # Begun through SQLAlchemy, so that its commit commits the raw COPY; a deferred
            # foreign key speaks at that commit, an error takes everything back.
            with conn.begin(), raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                copy.write(encoded.lines())
        except (psycopg.DatabaseError, sa.exc.DBAPIError) as exc:
            # Whatever the reason (a trigger's own error too), the stage's path tells the
            # rows apart; a lost connection is raised there.
            log.debug("%s: COPY refused (%s); upserting through the stage", target.qualified, exc)
            return False
    return True


def _write_staged(
    target: Target, batch: RowColumns, statement: str, collect: Collect | None = None
) -> tuple[dict[int, tuple[str, str]], dict[int, sa.exc.DBAPIError]]:
    """Stage the batch and run ``statement`` from the stage, in one transaction that commits.

    Returns, by row index, the rows that could not be sent (their column and reason) and
    the rows the database refused (its error); every other row is written.
    """
    with target.connect() as conn:
        encoded = _encode(target, conn, batch.names, batch.values)
        sent = encoded.accepted()
        refused: dict[int, sa.exc.DBAPIError] = {}
        if sent:
            _create_stage(target, conn, batch.names)
            attempt = _staged(target, conn, encoded, sent, batch.names, statement, collect)
            found = find_refused(conn, len(sent), attempt, stage=STAGE)
            refused = {sent[i]: exc for i, exc in found.items()}
        conn.commit()
    return encoded.refused, refused


def _encode(
    target: Target, conn: sa.Connection, names: Sequence[str], values: Sequence[Any]
) -> Encoded:
    json_columns = frozenset(c for c in names if target.kind(c) == "json")
    count = len(values[0]) if values else 0
    return encode_columns(
        names,
        values,
        count=count,
        json_columns=json_columns,
        dump=_psycopg_dump(conn.connection.driver_connection),
    )


def _create_stage(target: Target, conn: sa.Connection, names: Sequence[str]) -> None:
    """A temporary table with the written columns' types (typmods and domains too), so
    that COPY converts each value exactly as the destination would and names the row and
    column of a value it refuses; dropped at commit."""
    quoted = ", ".join(target.quote(c) for c in names)
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {target.quote(STAGE)} ON COMMIT DROP AS "
        f"SELECT {quoted} FROM {target.qualified} WITH NO DATA"
    )


def _staged(
    target: Target,
    conn: sa.Connection,
    encoded: Encoded,
    sent: Sequence[int],
    names: Sequence[str],
    statement: str,
    collect: Collect | None,
) -> Attempt:
    """An attempt for ``find_refused``: COPY a part of the batch into the stage, run the
    set-based ``statement`` from it (its result to ``collect``, when given), and empty the
    stage for the next part (in the same savepoint, so that a refused part leaves it empty
    too)."""
    raw = conn.connection.driver_connection
    stage = target.quote(STAGE)
    copy_sql = f"COPY {stage} ({', '.join(target.quote(c) for c in names)}) FROM STDIN"
    driver_error = target.driver_error
    total = len(sent)

    def attempt(part: Sequence[int]) -> None:
        data = encoded.lines(sent if len(part) == total else [sent[i] for i in part])
        try:
            with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                copy.write(data)
        except driver_error as exc:
            # The raw COPY is not SQLAlchemy's: wrap its error like every other statement's
            # (a DataError for a value the column cannot hold, an OperationalError for a
            # lost connection), so that row errors are told from the rest in one place.
            raise sa.exc.DBAPIError.instance(
                copy_sql, None, exc, driver_error, hide_parameters=True
            ) from exc
        result = conn.exec_driver_sql(statement)
        if collect is not None:
            collect(result)
        if len(part) < total:  # more parts follow; the whole batch ends at once
            conn.exec_driver_sql(f"TRUNCATE {stage}")

    return attempt


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
