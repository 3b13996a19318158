"""The values of the vectorized path: a polars expression with its kind and its unsure rows.

A ``Column`` is what one part of an expression gives for a whole batch: ``expr`` (a polars
expression over the batch's source columns), ``kind`` (the Python type every value of it has:
``str``, ``int``, ``bool``, ``date``, or ``null`` when it is always None) and ``unsure`` (a
boolean expression, or None for never): the rows where the column form cannot promise the
row path's value, because the row path fails there (a null operand, a division by zero, text
in none of the forms) or may differ (an integer past 64 bits, non-ASCII text for a case
change). Those rows are evaluated row-wise by the compiled closure, which gives the value or
the error the row path always gave; every other row takes the column value, and the property
test (tests/unit/test_columnar_property.py) holds the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

KINDS = ("str", "int", "bool", "date", "null")
DTYPES: dict[str, Any] = {
    "str": pl.String,
    "int": pl.Int64,
    "bool": pl.Boolean,
    "date": pl.Date,
    "null": pl.Null,
}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Python's whitespace (str.strip, str.split): more than Rust's (U+001C..U+001F), so strips
# and splits name the characters instead of trusting polars' default set. Written out: finding
# them by testing every code point costs a quarter of a second at each start of the process
# (tests/unit/test_columnar.py holds the list equal to that scan).
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# The same set as a Rust regex class.
PY_WHITESPACE_CLASS = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in PY_WHITESPACE) + "]"


class NoColumnForm(Exception):
    """A part of an expression that the vectorized path does not reproduce exactly."""


@dataclass(frozen=True)
class Column:
    """One part of an expression evaluated over a whole batch (see the module docstring)."""

    expr: pl.Expr
    kind: str
    unsure: pl.Expr | None = None
    constant: bool = False
    value: Any = None  # the Python value of a constant


def constant(value: Any) -> Column:
    """A constant the column forms can hold (text, a 64-bit integer, a boolean, None); a
    list, tuple or dict only as an argument (``map``'s dict, the right side of ``in``)."""
    if isinstance(value, list | tuple | dict):
        return Column(pl.lit(None), "container", constant=True, value=value)
    if value is None:
        return Column(pl.lit(None), "null", constant=True, value=None)
    if isinstance(value, bool):
        return Column(pl.lit(value, dtype=pl.Boolean), "bool", constant=True, value=value)
    if isinstance(value, int) and INT64_MIN <= value <= INT64_MAX:
        return Column(pl.lit(value, dtype=pl.Int64), "int", constant=True, value=value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise NoColumnForm("text that is not valid Unicode") from None
        return Column(pl.lit(value, dtype=pl.String), "str", constant=True, value=value)
    raise NoColumnForm(f"a constant of type {type(value).__name__}")


def either(*masks: pl.Expr | None) -> pl.Expr | None:
    """Rows unsure in any of ``masks`` (None: never)."""
    present = [mask for mask in masks if mask is not None]
    if not present:
        return None
    result = present[0]
    for mask in present[1:]:
        result = result | mask
    return result


def when_also(condition: pl.Expr, mask: pl.Expr | None) -> pl.Expr | None:
    """Rows where ``condition`` holds and ``mask`` says unsure."""
    return None if mask is None else condition & mask


def truthy(column: Column) -> pl.Expr:
    """Python's bool() of each value, never null."""
    if column.kind == "str":
        return column.expr.is_not_null() & (column.expr.str.len_bytes() > 0)
    if column.kind == "int":
        return column.expr.is_not_null() & (column.expr != 0)
    if column.kind == "bool":
        return column.expr.fill_null(False)
    if column.kind == "date":
        return column.expr.is_not_null()
    return pl.lit(False)


def common_kind(*columns: Column) -> str:
    """The kind of a value that may come from any of ``columns`` (None fits every kind)."""
    kinds = {column.kind for column in columns} - {"null"}
    if len(kinds) > 1 or "container" in kinds:
        raise NoColumnForm("parts of different types")
    return kinds.pop() if kinds else "null"


def is_ascii(expr: pl.Expr) -> pl.Expr:
    """Whether each text is ASCII only (null: true)."""
    return (expr.str.len_bytes() == expr.str.len_chars()).fill_null(True)
