"""Fast bulk writes into the control database: COPY on PostgreSQL.

The ORM's ``bulk_create`` prepares every value of every row in Python; for the record map
and the record events, written for every record of every batch, that cost dominated a run.
On PostgreSQL these rows go through COPY (straight into the table, or into a temporary
stage merged with ``INSERT … ON CONFLICT``), given a column at a time and encoded as one
buffer (``engine.copy_text``): a value shared by every row (the entity, the session, the
time) is encoded once. Other databases (SQLite, the embedded demo) keep the ORM path, which
the callers choose with ``copy_available()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection

from migrationsapp.engine.copy_text import Same, encode_columns

Column = Sequence[Any] | Same

__all__ = ["Same", "copy_available", "copy_columns", "copy_upsert"]


def copy_available() -> bool:
    return connection.vendor == "postgresql"


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _copy(
    cursor: Any,
    table: str,
    names: Sequence[str],
    columns: Sequence[Column],
    count: int,
    json_columns: frozenset[str],
) -> None:
    encoded = encode_columns(names, columns, count=count, json_columns=json_columns)
    if encoded.refused:
        # Control rows hold keys and reasons the run made; one that PostgreSQL cannot take
        # (a NUL byte in a legacy key) would fail the batch's commit anyway: say which.
        index, (column, reason) = next(iter(sorted(encoded.refused.items())))
        raise ValueError(f"{table}: row {index + 1}, column {column}: {reason}")
    quoted = ", ".join(_quote(c) for c in names)
    with cursor.cursor.copy(f"COPY {_quote(table)} ({quoted}) FROM STDIN") as copy:
        copy.write(encoded.lines())


def copy_columns(
    table: str,
    names: Sequence[str],
    columns: Sequence[Column],
    *,
    count: int,
    json_columns: frozenset[str] = frozenset(),
) -> None:
    """COPY ``count`` rows, given as ``columns`` (a sequence or a ``Same`` per name), into
    ``table`` (PostgreSQL only), inside the current transaction."""
    if count:
        with connection.cursor() as cursor:
            _copy(cursor, table, names, columns, count, json_columns)


def copy_upsert(
    table: str,
    names: Sequence[str],
    column_types: Sequence[str],
    columns: Sequence[Column],
    *,
    count: int,
    conflict: Sequence[str],
    assignments: Sequence[str],
    json_columns: frozenset[str] = frozenset(),
) -> None:
    """COPY rows into a temporary stage, then merge them into ``table``.

    ``assignments`` are SQL ``column = expression`` pairs for the update on conflict
    (``EXCLUDED.column`` names the incoming value).
    """
    if not count:
        return
    stage = f"{table}_stage"
    quoted = ", ".join(_quote(c) for c in names)
    definition = ", ".join(f"{_quote(c)} {t}" for c, t in zip(names, column_types, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{_quote(stage)}")
        cursor.execute(f"CREATE TEMPORARY TABLE {_quote(stage)} ({definition}) ON COMMIT DROP")
        _copy(cursor, stage, names, columns, count, json_columns)
        cursor.execute(
            f"INSERT INTO {_quote(table)} ({quoted}) SELECT {quoted} FROM {_quote(stage)} "
            f"ON CONFLICT ({', '.join(_quote(c) for c in conflict)}) "
            f"DO UPDATE SET {', '.join(assignments)}"
        )
        cursor.execute(f"DROP TABLE {_quote(stage)}")
