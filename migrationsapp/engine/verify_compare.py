"""One record's transformed source values against its destination row, as verify compares them.

Most rows of a verify are equal, and most equal values are already the same Python value on
both sides: the transform converted the source value to the column's type, and the
destination's driver returns that type. So a field is first compared as it stands (same class
and ``==``); only the fields that are not identical that way go through the type-aware
comparison (``values.destination_value`` then ``values.values_equal``: a Decimal's scale,
instants in other zones, single-precision floats, SQLite's text). Same class and ``==`` never
holds where ``values_equal`` would not (the property test of this module checks it on random
values), except for JSON, where ``1 == True`` and ``1 == 1.0`` are equal in Python but not
as JSON documents: JSON columns always take the type-aware way.

``compare_exactly`` is the field-by-field comparison without the shortcut: the reference the
shortcut is tested against. No Django here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .connectors import ColumnInfo
from .errors import RowError
from .values import UnresolvedReference, destination_value, values_equal
from .verify_report import FieldDifference

# Kinds whose Python equality is not the document's (see the module docstring).
_TYPE_AWARE_ONLY = frozenset({"json"})


class RowComparer:
    """Compares transformed source values with destination rows for a set of columns."""

    def __init__(self, columns: Mapping[str, ColumnInfo], soft_delete_column: str | None) -> None:
        self.columns = dict(columns)
        self.soft = soft_delete_column
        # (name, column, whether a same-class == settles it)
        self._fields = [
            (name, column, column.kind not in _TYPE_AWARE_ONLY)
            for name, column in self.columns.items()
        ]

    def differences(
        self, key_text: str, values: dict[str, Any] | RowError, row: Mapping[str, Any]
    ) -> list[FieldDifference]:
        """The fields of ``row`` that differ from ``values`` (none when the record is equal)."""
        if isinstance(values, RowError):
            return self._refused(key_text, values, row)
        differences: list[FieldDifference] = []
        for name, column, shortcut in self._fields:
            source = values.get(name)
            raw = row.get(name)
            if source is None and raw is None:
                continue
            if shortcut and source.__class__ is raw.__class__:
                try:
                    if source == raw:
                        continue
                except ArithmeticError:  # a signalling Decimal NaN: the exact way decides
                    pass
            difference = _field_difference(key_text, name, column, source, raw)
            if difference is not None:
                differences.append(difference)
        self._soft_deleted(key_text, row, differences)
        return differences

    def compare_exactly(
        self, key_text: str, values: dict[str, Any] | RowError, row: Mapping[str, Any]
    ) -> list[FieldDifference]:
        """``differences`` without the same-value shortcut: every field the type-aware way."""
        if isinstance(values, RowError):
            return self._refused(key_text, values, row)
        differences = []
        for name, column in self.columns.items():
            difference = _field_difference(key_text, name, column, values.get(name), row.get(name))
            if difference is not None:
                differences.append(difference)
        self._soft_deleted(key_text, row, differences)
        return differences

    def _refused(
        self, key_text: str, error: RowError, row: Mapping[str, Any]
    ) -> list[FieldDifference]:
        # Not quarantined, yet the active mapping refuses the row now (e.g. the mapping
        # changed since it was written): its destination cannot be equal to it.
        name = error.field or next(iter(self.columns), "")
        shown = (
            destination_value(self.columns[name], row.get(name)) if name in self.columns else None
        )
        return [FieldDifference(key_text, name, f"<fails: {error.reason}>", shown)]

    def _soft_deleted(
        self, key_text: str, row: Mapping[str, Any], differences: list[FieldDifference]
    ) -> None:
        if self.soft and row.get(self.soft) is not None:
            # A live record marked deleted in the destination.
            differences.append(FieldDifference(key_text, self.soft, None, row.get(self.soft)))


def _field_difference(
    key_text: str, name: str, column: ColumnInfo, source: Any, raw: Any
) -> FieldDifference | None:
    destination = destination_value(column, raw)
    if values_equal(column, source, destination):
        return None
    shown = str(source) if isinstance(source, UnresolvedReference) else source
    return FieldDifference(key_text, name, shown, destination)
