"""A batch of values as one buffer for PostgreSQL's ``COPY … FROM STDIN`` (text format).

psycopg's ``Copy.write_row`` adapts every value of every row through several Python calls;
for the batches diffmig writes (thousands of rows of a few columns, to the destination and
to the record map and events) that per-row cost was a large part of a run. Here a batch is
encoded a column at a time: after conversion a column holds values of one Python type, so
one pass with one formatter per column does it, the columns are joined into lines by
``str.join`` and the batch goes to the server as one buffer.

The text format (PostgreSQL's COPY documentation): fields separated by a tab, rows by a
newline, NULL written ``\\N``; a backslash, tab, newline or carriage return inside a value is
written ``\\\\``, ``\\t``, ``\\n``, ``\\r``. Each type is written as psycopg writes it, so the
server reads the same value either way. A value that cannot be sent is not written: text
with a NUL byte (PostgreSQL text cannot hold one), or an object that no formatter here and
no adapter of the caller's ``dump`` knows; its row is reported with the column and the
reason, and the rest of the batch is written.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = ("\\", "\t", "\n", "\r")
NUL_REASON = "text contains a NUL byte (0x00), which PostgreSQL cannot store"

# A formatter for values of a type the encoder does not know (psycopg's adapters, say):
# the value's text as the server reads it, or an exception for a value it cannot adapt.
Dump = Callable[[Any], str]


@dataclass(frozen=True)
class Same:
    """A column whose every row holds this one value (an entity name, a session id, a time):
    encoded once, not once per row."""

    value: Any


def _escape(text: str) -> str:
    return text.translate(_ESCAPES) if any(c in text for c in _SPECIAL) else text


def _uuid(value: uuid.UUID) -> str:
    # The 32 hex digits, which PostgreSQL reads as a UUID: cheaper than str()'s hyphens.
    return f"{value.int:032x}"


def _decimal(value: Decimal) -> str:
    if value.is_nan():
        return "NaN"  # also sNaN, which the server does not read
    if value.is_infinite():
        return "-Infinity" if value < 0 else "Infinity"
    return str(value)


def _bool(value: bool) -> str:
    return "t" if value else "f"


def _bytes(value: bytes | bytearray | memoryview) -> str:
    # bytea's hex form, its backslash doubled for COPY.
    return "\\\\x" + bytes(value).hex()


def json_text(value: Any) -> str:
    """A value of a JSON column as its document's text. A str bound to a JSON column is a
    JSON document already (as psycopg sends it)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# Formatters whose output never needs escaping (digits, signs, letters, '-', ':', '.', '+').
_PLAIN: dict[type, Callable[[Any], str]] = {
    int: int.__repr__,
    float: float.__repr__,
    bool: _bool,
    Decimal: _decimal,
    uuid.UUID: _uuid,
    dt.datetime: dt.datetime.isoformat,
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
    bytes: _bytes,
    bytearray: _bytes,
    memoryview: _bytes,
}


class Encoded:
    """A batch as COPY text fields, column by column, with the rows that cannot be sent."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.columns: list[list[str] | str] = []
        # row index -> (column name, reason): rows left out of ``lines``.
        self.refused: dict[int, tuple[str, str]] = {}

    def accepted(self) -> list[int]:
        """The rows that can be sent, by index."""
        return [i for i in range(self.count) if i not in self.refused]

    def lines(self, rows: Sequence[int] | None = None) -> bytes:
        """The COPY data of ``rows`` (by index, in that order; default: every accepted row)."""
        if rows is None:
            rows = self.accepted() if self.refused else range(self.count)
        if not rows:
            return b""
        every = len(rows) == self.count  # all rows, in order (refused ones cannot be asked)
        fields = []
        for column in self.columns:
            if isinstance(column, str):  # one value for every row
                fields.append([column] * len(rows))
            elif every:
                fields.append(column)
            else:
                fields.append([column[i] for i in rows])
        text = "\n".join(map("\t".join, zip(*fields, strict=True)))
        return (text + "\n").encode("utf-8")


def encode_columns(
    names: Sequence[str],
    columns: Sequence[Sequence[Any] | Same],
    *,
    count: int,
    json_columns: frozenset[str] = frozenset(),
    dump: Dump | None = None,
) -> Encoded:
    """Encode ``count`` rows given as ``columns`` (one sequence, or a ``Same``, per name).

    ``json_columns`` are written as JSON (dicts and lists dumped, text sent as it is);
    ``dump`` formats values of any type not known here (None: such a value refuses its row).
    """
    encoded = Encoded(count)
    for name, values in zip(names, columns, strict=True):
        if isinstance(values, Same):
            refused: dict[int, str] = {}
            one = _encode(name, [values.value], name in json_columns, dump, refused)[0]
            if refused:
                reason = refused[0]
                encoded.refused.update((i, (name, reason)) for i in range(count))
            encoded.columns.append(one)
            continue
        if len(values) != count:
            raise ValueError(f"column {name!r} has {len(values)} values, expected {count}")
        refused = {}
        encoded.columns.append(_encode(name, values, name in json_columns, dump, refused))
        for index, reason in refused.items():
            encoded.refused.setdefault(index, (name, reason))
    return encoded


def _encode(
    name: str, values: Sequence[Any], as_json: bool, dump: Dump | None, refused: dict[int, str]
) -> list[str]:
    kinds = set(map(type, values))
    has_null = type(None) in kinds
    kinds.discard(type(None))
    if as_json:
        if kinds <= {str}:
            return _text(values, has_null, refused)
        return _generic(values, lambda v: _escape(json_text(v)), refused)
    if not kinds:
        return [NULL] * len(values)
    if len(kinds) == 1:
        (kind,) = kinds
        if kind is str:
            return _text(values, has_null, refused)
        if kind is Decimal:
            return _decimals(values, has_null)
        plain = _PLAIN.get(kind)
        if plain is not None:
            if not has_null:
                return list(map(plain, values))
            return [NULL if v is None else plain(v) for v in values]
    return _generic(values, lambda v: _one(v, dump), refused)


def _decimals(values: Sequence[Any], has_null: bool) -> list[str]:
    out = [NULL if v is None else str(v) for v in values] if has_null else list(map(str, values))
    if "NaN" in "\t".join(out):  # sNaN and -NaN, which the server does not read, as NaN
        out = [NULL if v is None else _decimal(v) for v in values]
    return out


def _text(values: Sequence[Any], has_null: bool, refused: dict[int, str]) -> list[str]:
    present = [v for v in values if v is not None] if has_null else values
    blob = "".join(present)
    if "\x00" in blob:
        for index, value in enumerate(values):
            if value is not None and "\x00" in value:
                refused[index] = NUL_REASON
    if any(c in blob for c in _SPECIAL):
        out = [NULL if v is None else v.translate(_ESCAPES) for v in values]
    elif has_null:
        out = [NULL if v is None else v for v in values]
    else:
        out = list(values)
    for index in refused:
        out[index] = NULL  # never sent: the row is left out
    return out


def _one(value: Any, dump: Dump | None) -> str:
    if isinstance(value, str):
        return _escape(value)
    plain = _PLAIN.get(type(value))
    if plain is not None:
        return plain(value)
    if dump is None:
        raise TypeError(f"cannot write a value of type {type(value).__name__}")
    return _escape(dump(value))


def _generic(
    values: Sequence[Any], one: Callable[[Any], str], refused: dict[int, str]
) -> list[str]:
    out = []
    for index, value in enumerate(values):
        if value is None:
            out.append(NULL)
            continue
        try:
            text = one(value)
            if "\x00" in text:
                raise ValueError(NUL_REASON)
        except (TypeError, ValueError, OverflowError) as exc:
            refused[index] = str(exc) or type(exc).__name__
            text = NULL  # never sent: the row is left out
        out.append(text)
    return out
