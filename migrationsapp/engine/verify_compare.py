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

``batch_differences`` compares a whole batch a column at a time: the batch's values are
transposed into columns and each column's pairs are tested by builtins (``map`` of ``==``
and of the classes; ``==`` itself, never the identity shortcut of a list's comparison, under
which a NaN would equal itself), so an equal batch runs no code of ours per record. Only the
records with a field that is not settled that way (or a refused row, or a soft-deleted one)
go through ``differences``, which decides them exactly as a record alone. A record the column
pass settles is one ``differences`` finds equal, field by field, by the same test, so the two
give the same report (a property test checks it).

``compare_exactly`` is the field-by-field comparison without the shortcut: the reference the
shortcut is tested against. No Django here.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from itertools import compress, repeat
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

    @property
    def row_columns(self) -> list[str]:
        """The destination columns a row is read with, in ``batch_differences``' order: the
        compared ones, then the soft-delete column (when checked)."""
        return [*self.columns, *([self.soft] if self.soft else [])]

    def batch_differences(
        self,
        key_texts: Sequence[str],
        values: Sequence[dict[str, Any] | RowError],
        rows: Sequence[Sequence[Any]],
    ) -> dict[int, list[FieldDifference]]:
        """``differences`` of each record of a batch, by its position, for the records that
        have any. ``rows`` are the destination rows as tuples in ``row_columns``' order."""
        unsettled = self._unsettled(values, rows)
        if not unsettled:
            return {}
        names = self.row_columns
        found: dict[int, list[FieldDifference]] = {}
        for position in sorted(unsettled):
            row = dict(zip(names, rows[position], strict=True))
            differences = self.differences(key_texts[position], values[position], row)
            if differences:
                found[position] = differences
        return found

    def _unsettled(
        self, values: Sequence[dict[str, Any] | RowError], rows: Sequence[Sequence[Any]]
    ) -> set[int]:
        """The positions whose record the column pass cannot settle as equal."""
        positions = range(len(values))
        unsettled: set[int] = set()
        if not values:
            return unsettled
        records: Sequence[Any] = values
        if set(map(type, values)) - {dict}:
            # A refused row (RowError) takes the record's own way; a record of NULLs stands
            # in for it in the columns.
            unsettled.update(i for i in positions if type(values[i]) is not dict)
            nulls = dict.fromkeys(self.columns)
            records = [v if type(v) is dict else nulls for v in values]
        # The batch a column at a time: each side's tuples transposed by one zip.
        source_columns = self._source_columns(records)
        raw_columns = list(zip(*rows, strict=True))
        if self.soft is not None:
            soft = raw_columns[len(self.columns)]
            unsettled.update(compress(positions, map(operator.is_not, soft, repeat(None))))
        for (_name, _column, shortcut), source, raw in zip(
            self._fields, source_columns, raw_columns, strict=False
        ):
            if not shortcut:
                # Only NULL on both sides settles a field that has no shortcut.
                unsettled.update(compress(positions, map(operator.is_not, source, repeat(None))))
                unsettled.update(compress(positions, map(operator.is_not, raw, repeat(None))))
                continue
            try:
                if all(map(operator.eq, source, raw)) and all(
                    map(operator.is_, map(type, source), map(type, raw))
                ):
                    continue  # the whole column is settled (NULL on both sides is equal too)
                settled = map(
                    operator.and_,
                    map(bool, map(operator.eq, source, raw)),
                    map(operator.is_, map(type, source), map(type, raw)),
                )
                unsettled.update(compress(positions, map(operator.not_, settled)))
            except ArithmeticError:  # a signalling Decimal NaN: each record decides
                unsettled.update(positions)
        return unsettled

    def _source_columns(self, records: Sequence[dict[str, Any]]) -> list[Sequence[Any]]:
        """The records' values of each compared column, in the columns' order."""
        names = list(self.columns)
        try:
            if not names:
                return []
            if len(names) == 1:
                return [list(map(operator.itemgetter(names[0]), records))]
            return list(zip(*map(operator.itemgetter(*names), records), strict=True))
        except KeyError:  # a record without some column: None, as ``differences`` reads it
            return [list(map(dict.get, records, repeat(name))) for name in names]

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
