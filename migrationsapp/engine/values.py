"""Values as verify and preview compare and show them.

``values_equal`` is type-aware: numbers by value (``85000.5`` equals ``85000.50``), aware
datetimes as instants, booleans as booleans, JSON by content, text exactly. Destination
values are first brought to the column's kind (``destination_value``: SQLite hands back
text). ``json_value`` makes any value JSON-safe for reports. No Django here.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .connectors import ColumnInfo
from .convert import as_bool, as_decimal, as_text, convert_value
from .errors import RowError

# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnresolvedReference:
    """A reference whose parent has no live record map entry (it was never migrated)."""

    entity: str
    key_text: str

    def __str__(self) -> str:
        return f"→ {self.entity} {self.key_text} (not migrated yet)"


def describe_reference(entity: str, key_text: str, parent_uuid: uuid.UUID | None) -> str:
    """A reference for people: ``→ office 3 (9c0e…)`` or ``→ office 3 (not migrated yet)``."""
    return f"→ {entity} {key_text} ({parent_uuid if parent_uuid else 'not migrated yet'})"


def json_value(value: Any) -> Any:
    """``value`` as JSON can hold it: numbers and dates as text, aware datetimes in UTC."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else repr(value)
    if isinstance(value, Decimal):
        return as_text(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and value.tzinfo.utcoffset(value) is not None:
            value = value.astimezone(dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def destination_value(column: ColumnInfo, value: Any) -> Any:
    """A value read from the destination, brought to its column's kind.

    PostgreSQL already returns the right types; SQLite returns text and numbers. A value
    that does not convert is compared as read.
    """
    if value is None:
        return None
    try:
        # Naive timestamps read from a timestamptz-less destination are UTC wall-clock.
        return convert_value(value, column.kind, tz=dt.UTC)
    except RowError:
        return value


def _is_aware(value: dt.datetime) -> bool:
    return value.tzinfo is not None and value.tzinfo.utcoffset(value) is not None


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC) if _is_aware(value) else value.replace(tzinfo=dt.UTC)


def _are_instants(kind: str, a: Any, b: Any) -> bool:
    """Two datetimes to compare as instants, whatever zone each side carries."""
    if not (isinstance(a, dt.datetime) and isinstance(b, dt.datetime)):
        return False
    return kind == "datetime_tz" or _is_aware(a) or _is_aware(b)


def _single_precision(sql_type: str) -> bool:
    return sql_type.upper().split("(")[0].strip() in ("REAL", "FLOAT4")


def _float32(value: float) -> bytes:
    return struct.pack("<f", value)


def values_equal(column: ColumnInfo, source: Any, destination: Any) -> bool:
    """Whether the converted source value and the destination value are the same datum."""
    if source is None or destination is None:
        return source is None and destination is None
    if isinstance(source, UnresolvedReference):
        return False
    kind = column.kind
    try:
        if kind in ("integer", "numeric"):
            # By value: the scale of a Decimal (85000.5 vs 85000.50) is not a difference.
            return as_decimal(source) == as_decimal(destination)
        if kind == "float":
            a, b = float(source), float(destination)
            # A REAL column keeps single precision: compare what it can hold.
            return a == b or (_single_precision(column.sql_type) and _float32(a) == _float32(b))
        if kind == "boolean":
            return as_bool(source) == as_bool(destination)
        if _are_instants(kind, source, destination):
            return _as_utc(source) == _as_utc(destination)
        if kind == "uuid":
            return str(source).lower() == str(destination).lower()
        if kind == "json":
            return json.dumps(json_value(source), sort_keys=True) == json.dumps(
                json_value(destination), sort_keys=True
            )
        if kind == "bytes":
            return bytes(source) == bytes(destination)
        if kind == "text" and not (isinstance(source, str) and isinstance(destination, str)):
            return as_text(source) == as_text(destination)
    except (ValueError, TypeError, ArithmeticError):
        return False
    # Text exactly (case, trailing spaces), dates, times, naive datetimes.
    return source == destination


def as_uuid(value: Any) -> uuid.UUID | None:
    """A UUID from a driver value (uuid.UUID, text, 16 bytes), or None when it is none."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        if isinstance(value, bytes) and len(value) == 16:
            return uuid.UUID(bytes=value)
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None
