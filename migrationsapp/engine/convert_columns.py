"""A whole column converted at once, as ``convert.convert_value`` converts each value.

A batch (engine.batch_transform) converts a column in one pass for the values a source
commonly gives a column kind — naive datetimes, finite decimals — with ``convert_value``'s
results; a column holding anything else is left to ``convert_value``, value by value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from migrationsapp.engine.convert import QUANTIZE_CONTEXT

_NONE = type(None)


def column_conversion(
    kind: str, *, tz: dt.tzinfo, scale: int | None, nullable: bool
) -> Callable[[list[Any]], list[Any] | None] | None:
    """For a few kinds, a function converting a whole column as ``convert_value`` converts
    each value, or returning None when a value is not of the common form (then each value
    goes through ``convert_value``); None for the other kinds. A NULL is only common where
    the column takes one (``nullable``)."""
    if kind in ("datetime", "datetime_tz"):
        times = frozenset({dt.datetime, _NONE} if nullable else {dt.datetime})
        zone = tz if kind == "datetime_tz" else None

        def datetimes(values: list[Any]) -> list[Any] | None:
            if not set(map(type, values)) <= times:
                return None
            if any(value.tzinfo is not None for value in values if value is not None):
                return None  # an aware value is moved to the zone: value by value
            if zone is None:
                return values  # a naive value stays as it is
            return [None if value is None else value.replace(tzinfo=zone) for value in values]

        return datetimes
    if kind == "numeric":
        decimals = frozenset({Decimal, _NONE} if nullable else {Decimal})
        step = Decimal(1).scaleb(-scale) if scale is not None else None

        def numbers(values: list[Any]) -> list[Any] | None:
            if not set(map(type, values)) <= decimals:
                return None
            if not all(value.is_finite() for value in values if value is not None):
                return None  # refused, naming the value: value by value
            if step is None:
                return values
            try:
                return [
                    None
                    if value is None
                    else value.quantize(step, rounding=ROUND_HALF_EVEN, context=QUANTIZE_CONTEXT)
                    for value in values
                ]
            except ArithmeticError:  # past the widest numeric: value by value says which
                return None

        return numbers
    return None
