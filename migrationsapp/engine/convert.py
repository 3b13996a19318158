"""Converting a transformed value to the type of its destination column.

The last step before validation: whatever a transform or expression produced is turned
into what the destination column holds (0/1 -> boolean, DECIMAL -> numeric, a naive
DATETIME -> timestamptz in the source connection's zone, numbers -> text). A value that
does not convert fails its row with ``RowError(rule="type")``; ``None`` always stays ``None``.
Text with a NUL byte fails here too, naming the field: PostgreSQL text cannot hold one, and
the destination would otherwise refuse the row only when it is written.

The lenient parsers here (``as_text``, ``as_int``, ``as_decimal``, ``as_bool``) are shared
with the function library, so ``str(v)`` and a text column agree on how a value reads.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from migrationsapp.engine.errors import RowError

KINDS = (
    "text",
    "integer",
    "numeric",
    "float",
    "boolean",
    "date",
    "datetime",
    "datetime_tz",
    "time",
    "uuid",
    "json",
    "bytes",
    "other",
)

# ASCII digits only: Python's int()/Decimal() also accept other scripts' digits and "1_000",
# which a legacy text column should not smuggle into a number.
_INT_TEXT = re.compile(r"[+-]?[0-9]+(?:\.0*)?")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE_TEXT = frozenset({"1", "y", "yes", "true"})
_FALSE_TEXT = frozenset({"0", "n", "no", "false"})
# Beyond this many digits a Decimal is shown in scientific form: 'f' formatting of 1E+999999999
# would build a billion-character string.
_MAX_PLAIN_DIGITS = 1000
# Wide enough to quantize any numeric(p, s) PostgreSQL accepts (p <= 1000) without overflow.
QUANTIZE_CONTEXT = Context(prec=1000)
_SHOW_LIMIT = 120


def show_value(value: Any) -> str:
    """The repr of a value for a message, cut short so a huge blob cannot flood the log."""
    text = repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 1] + "…"


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        return str(value)
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite decimals have an int exponent
    if abs(value.adjusted()) > _MAX_PLAIN_DIGITS or exponent < -_MAX_PLAIN_DIGITS:
        return str(value)
    return format(value, "f")


def _float_text(value: float) -> str:
    if not math.isfinite(value):
        return repr(value)
    # repr() is the shortest text that reads back as the same float; going through Decimal
    # removes the exponent (1e-07 -> 0.0000001, 1e+16 -> 10000000000000000).
    return format(Decimal(repr(value)), "f")


def _json_default(value: Any) -> str:
    return as_text(value)


def as_text(value: Any) -> str:
    """A value as text: numbers without exponent noise, dates in ISO form, bytes as UTF-8.

    Raises ``ValueError`` for a value that has no sensible text.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8")
    if isinstance(value, dict | list):
        try:
            return json.dumps(value, ensure_ascii=False, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from exc
    raise ValueError(f"{type(value).__name__} has no text form")


def _int_from_decimal(value: Decimal) -> int:
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError("not an integer")
    if value.adjusted() > _MAX_PLAIN_DIGITS:
        raise ValueError("too large")
    return int(value)


def as_int(value: Any) -> int:
    """An int from an int, a bool, an integral float/Decimal, or integral text ('42', ' 42 ')."""
    if isinstance(value, int):  # bool included: True -> 1
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise ValueError("not an integer")
    if isinstance(value, Decimal):
        return _int_from_decimal(value)
    if isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.fullmatch(text):
            return int(text.split(".", 1)[0])
        raise ValueError("not an integer")
    raise ValueError(f"{type(value).__name__} is not a number")


def as_decimal(value: Any) -> Decimal:
    """A finite Decimal from a Decimal, an int, a float (via its shortest text) or number text."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        # Via str so that 0.1 becomes Decimal('0.1'), not 0.1000000000000000055511151231257827.
        result = Decimal(repr(value))
    elif isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value.strip()):
        result = Decimal(value.strip())
    else:
        raise ValueError("not a number")
    if not result.is_finite():
        raise ValueError("not a finite number")
    return result


def as_bool(value: Any) -> bool:
    """A bool from a bool, 0/1, Y/N, yes/no, true/false (any case), or a MySQL BIT(1) byte."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        if value == 1:
            return True
        if value == 0:
            return False
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_TEXT:
            return True
        if text in _FALSE_TEXT:
            return False
    elif isinstance(value, bytes | bytearray) and len(value) == 1 and value[0] in (0, 1):
        return value[0] == 1
    raise ValueError("not a boolean")


def _is_naive(value: dt.datetime) -> bool:
    return value.tzinfo is None or value.tzinfo.utcoffset(value) is None


def _parse_datetime(value: Any) -> Any:
    return dt.datetime.fromisoformat(value.strip()) if isinstance(value, str) else value


class _Refused(ValueError):
    """A value no destination column of the kind can hold; the message says why."""


NUL_REASON = "text contains a NUL byte (0x00), which PostgreSQL cannot store"


def check_text(text: str) -> str:
    """``text`` if a PostgreSQL text column can hold it; raises ``ValueError`` (with the
    reason) for a NUL byte, which legacy databases keep and PostgreSQL refuses."""
    if "\x00" in text:
        raise _Refused(NUL_REASON)
    return text


def _to_text(value: Any, tz: dt.tzinfo, scale: int | None) -> str:
    return check_text(as_text(value))


def _to_integer(value: Any, tz: dt.tzinfo, scale: int | None) -> int:
    return as_int(value)


def _to_numeric(value: Any, tz: dt.tzinfo, scale: int | None) -> Decimal:
    result = as_decimal(value)
    if scale is not None:
        result = result.quantize(
            Decimal(1).scaleb(-scale), rounding=ROUND_HALF_EVEN, context=QUANTIZE_CONTEXT
        )
    return result


def _to_float(value: Any, tz: dt.tzinfo, scale: int | None) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int | Decimal):
        return float(value)
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value.strip()):
        return float(value.strip())
    raise ValueError("not a number")


def _to_boolean(value: Any, tz: dt.tzinfo, scale: int | None) -> bool:
    return as_bool(value)


def _to_date(value: Any, tz: dt.tzinfo, scale: int | None) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            return dt.datetime.fromisoformat(text).date()
    raise ValueError("not a date")


def _to_datetime(value: Any, tz: dt.tzinfo, scale: int | None) -> dt.datetime:
    value = _parse_datetime(value)
    if isinstance(value, dt.datetime):
        # A naive destination column holds wall-clock time in the connection's zone.
        return value if _is_naive(value) else value.astimezone(tz).replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    raise ValueError("not a datetime")


def _to_datetime_tz(value: Any, tz: dt.tzinfo, scale: int | None) -> dt.datetime:
    value = _parse_datetime(value)
    if isinstance(value, dt.datetime):
        # replace(tzinfo=zoneinfo) picks the offset in force at that wall-clock time, so a
        # naive 01:30 in January is -05:00 in New York and in July -04:00.
        return value.replace(tzinfo=tz) if _is_naive(value) else value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=tz)
    raise ValueError("not a datetime")


def _to_time(value: Any, tz: dt.tzinfo, scale: int | None) -> dt.time:
    if isinstance(value, dt.datetime):
        return value.time()
    if isinstance(value, dt.time):
        return value
    if isinstance(value, dt.timedelta):
        # PyMySQL returns a TIME column as a timedelta.
        if dt.timedelta(0) <= value < dt.timedelta(days=1):
            return (dt.datetime.min + value).time()
        raise ValueError("outside one day")
    if isinstance(value, str):
        return dt.time.fromisoformat(value.strip())
    raise ValueError("not a time")


def _to_uuid(value: Any, tz: dt.tzinfo, scale: int | None) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        return uuid.UUID(value.strip())
    if isinstance(value, bytes) and len(value) == 16:
        return uuid.UUID(bytes=value)
    raise ValueError("not a UUID")


def _to_json(value: Any, tz: dt.tzinfo, scale: int | None) -> Any:
    if isinstance(value, dict | list | str | int | float | Decimal):
        return value
    if isinstance(value, tuple):
        return list(value)
    raise ValueError("not JSON")


def _to_bytes(value: Any, tz: dt.tzinfo, scale: int | None) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ValueError("not bytes")


def _to_other(value: Any, tz: dt.tzinfo, scale: int | None) -> Any:
    return value


_CONVERTERS: dict[str, Callable[[Any, dt.tzinfo, int | None], Any]] = {
    "text": _to_text,
    "integer": _to_integer,
    "numeric": _to_numeric,
    "float": _to_float,
    "boolean": _to_boolean,
    "date": _to_date,
    "datetime": _to_datetime,
    "datetime_tz": _to_datetime_tz,
    "time": _to_time,
    "uuid": _to_uuid,
    "json": _to_json,
    "bytes": _to_bytes,
    "other": _to_other,
}
assert tuple(_CONVERTERS) == KINDS


def convert_value(
    value: Any, kind: str, *, tz: dt.tzinfo, scale: int | None = None, column: str = ""
) -> Any:
    """``value`` as the destination column of ``kind`` holds it; ``None`` stays ``None``.

    ``tz`` is the zone of naive source timestamps; ``scale`` the digits after the point of a
    numeric column. A value that does not convert raises ``RowError(rule="type")``.
    """
    if value is None:
        return None
    try:
        converter = _CONVERTERS[kind]
    except KeyError:
        raise ValueError(f"unknown column kind {kind!r}; expected one of {KINDS}") from None
    try:
        return converter(value, tz, scale)
    except _Refused as exc:
        raise RowError(
            f"{exc}: {show_value(value)}; clean the source value or remove the byte in a transform",
            field=column or None,
            rule="type",
            value=value,
        ) from exc
    except (ValueError, TypeError, ArithmeticError) as exc:
        # decimal.InvalidOperation (quantize overflow) and OverflowError are ArithmeticErrors.
        raise RowError(
            f"cannot convert {show_value(value)} to {kind}",
            field=column or None,
            rule="type",
            value=value,
        ) from exc
