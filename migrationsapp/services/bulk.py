"""Fast bulk writes into the control database: COPY on PostgreSQL.

The ORM's ``bulk_create`` prepares every value of every row in Python; for the record map
and the record events, written for every record of every batch, that cost dominated a run.
On PostgreSQL these rows go through COPY (straight into the table, or into a temporary
stage merged with ``INSERT … ON CONFLICT``). Other databases (SQLite, the embedded demo)
keep the ORM path, which the callers choose with ``copy_available()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection


def copy_available() -> bool:
    return connection.vendor == "postgresql"


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """COPY rows into ``table`` (PostgreSQL only), inside the current transaction."""
    names = ", ".join(_quote(c) for c in columns)
    sql = f"COPY {_quote(table)} ({names}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def copy_upsert(
    table: str,
    columns: Sequence[str],
    column_types: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    conflict: Sequence[str],
    assignments: Sequence[str],
) -> None:
    """COPY rows into a temporary stage, then merge them into ``table``.

    ``assignments`` are SQL ``column = expression`` pairs for the update on conflict
    (``EXCLUDED.column`` names the incoming value).
    """
    stage = _quote(f"{table}_stage")
    names = ", ".join(_quote(c) for c in columns)
    definition = ", ".join(f"{_quote(c)} {t}" for c, t in zip(columns, column_types, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{stage}")
        cursor.execute(f"CREATE TEMPORARY TABLE {stage} ({definition}) ON COMMIT DROP")
        with cursor.cursor.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {_quote(table)} ({names}) SELECT {names} FROM {stage} "
            f"ON CONFLICT ({', '.join(_quote(c) for c in conflict)}) "
            f"DO UPDATE SET {', '.join(assignments)}"
        )
        cursor.execute(f"DROP TABLE {stage}")
