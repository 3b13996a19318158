"""A source row's values as the engine reads them: the driver's values, a few made regular.

psycopg already returns the right Python types, and SQLite's values stay as sqlite3 gives
them. Both MySQL drivers (mysqlclient and PyMySQL, which read alike: ``mysql_drivers.py``)
leave a few types raw, made regular here: BIT -> int, TIME -> datetime.time, TIMESTAMP ->
aware UTC datetime, JSON text -> Python objects, UUID text -> uuid.UUID. Values the types
cannot hold (TIME beyond 24h, text that is not JSON or not a UUID) stay as they are.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from migrationsapp.engine.introspect import ColumnInfo

Converter = Callable[[Any], Any]


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


_MYSQL_BY_KIND: dict[str, Converter] = {
    "time": _mysql_time,
    "datetime_tz": _mysql_utc,
    "json": _json,
    "uuid": _uuid,
}


def _converter(dialect: str, column: ColumnInfo) -> Converter | None:
    """How a driver value of this column becomes the engine's value (None: as it is)."""
    if dialect != "mysql":
        return None
    if column.sql_type.upper().split("(")[0].strip() == "BIT":
        return _bits
    return _MYSQL_BY_KIND.get(column.kind)


def row_converter(dialect: str, columns: Sequence[ColumnInfo]) -> Callable[[Sequence], tuple]:
    """A function from a driver row of ``columns`` to the tuple of the engine's values."""
    converters = [_converter(dialect, c) for c in columns]
    if not any(converters):
        return tuple

    def convert(row: Sequence) -> tuple:
        return tuple(
            v if (fn is None or v is None) else fn(v) for fn, v in zip(converters, row, strict=True)
        )

    return convert
