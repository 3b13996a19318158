"""Rows a column at a time: the shape a batch keeps from its transform to the destination's COPY.

A run's batch is computed a field at a time (``batch_transform``), checked a rule and a
reference column at a time (``row_pipeline``, ``validation``) and encoded for COPY a column
at a time (``copy_text``). ``RowColumns`` carries it between those steps as one list of
values per column, so that no step turns it into one dict per row and the next back into
columns. A row's dict is made only where one row is looked at on its own: a refused row's
message, an adopted row, a preview.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any


@dataclass(frozen=True, slots=True)
class RowColumns:
    """``count`` rows: ``values[i]`` holds column ``names[i]``'s value of each row, in order."""

    names: Sequence[str]
    values: Sequence[list[Any]]
    count: int

    @classmethod
    def of_rows(cls, rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> RowColumns:
        """The rows' ``names``, a column at a time (a row without a column holds NULL there)."""
        if len(names) < 2 or not rows:
            values = [[row.get(name) for row in rows] for name in names]
        else:
            try:
                # itemgetter and zip transpose in C: no Python step per value.
                values = [list(c) for c in zip(*map(itemgetter(*names), rows), strict=True)]
            except KeyError:
                values = [[row.get(c) for row in rows] for c in names]
        return cls(list(names), values, len(rows))

    def __len__(self) -> int:
        return self.count

    def column(self, name: str) -> list[Any]:
        """The values of column ``name`` (NULL for each row when the batch has no such column)."""
        try:
            return self.values[self.names.index(name)]
        except ValueError:
            return [None] * self.count

    def row(self, index: int) -> dict[str, Any]:
        """Row ``index`` as one dict, for a step that looks at that row alone."""
        return {name: column[index] for name, column in zip(self.names, self.values, strict=True)}

    def take(self, indexes: Sequence[int]) -> RowColumns:
        """The rows at ``indexes``, in that order (the same lists when that is every row)."""
        if len(indexes) == self.count and all(i == n for n, i in enumerate(indexes)):
            return self
        pick = itemgetter(*indexes) if len(indexes) > 1 else None
        if pick is None:
            values = [[column[i] for i in indexes] for column in self.values]
        else:
            values = [list(pick(column)) for column in self.values]
        return RowColumns(self.names, values, len(indexes))

    def with_first(self, name: str, values: list[Any]) -> RowColumns:
        """These rows with column ``name`` before the others (the key column of a write)."""
        if len(values) != self.count:
            raise ValueError("a column of another length")
        return RowColumns([name, *self.names], [values, *self.values], self.count)


class SourceRows(Sequence[Mapping[str, Any]]):
    """A batch's source rows as the transform reads them: a column at a time where it can
    (``column``: a field copied as read, the columns a vectorized field reads), one dict a
    row where a field's row closure needs one (``rows``). Given either form, each is made
    from the other once, and only when first asked: a batch read as columns whose fields all
    run on columns never becomes one dict a row."""

    __slots__ = ("_columns", "_made", "_rows")

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]] | None = None,
        *,
        columns: RowColumns | None = None,
    ) -> None:
        if (rows is None) == (columns is None):
            raise ValueError("give the rows or their columns")
        self._rows = rows
        self._columns = columns
        self._made: dict[str, list[Any]] = {}

    def column(self, name: str) -> list[Any]:
        """The values of ``name``, one per row (do not change them: they may be the read's).
        Raises KeyError when the rows have no such column."""
        columns = self._columns
        if columns is not None:
            if name not in columns.names:
                raise KeyError(name)
            return columns.column(name)
        made = self._made.get(name)
        if made is None:
            assert self._rows is not None
            made = self._made[name] = [row[name] for row in self._rows]
        return made

    def row(self, index: int) -> Mapping[str, Any]:
        """Row ``index`` as one dict (made alone when the rows are columns)."""
        if self._rows is not None:
            return self._rows[index]
        assert self._columns is not None
        return self._columns.row(index)

    def rows(self) -> Sequence[Mapping[str, Any]]:
        """One dict a row."""
        if self._rows is None:
            assert self._columns is not None
            names = self._columns.names
            self._rows = [
                dict(zip(names, values, strict=True))
                for values in zip(*self._columns.values, strict=True)
            ]
            if not names:
                self._rows = [{} for _ in range(self._columns.count)]
        return self._rows

    def __len__(self) -> int:
        return self._columns.count if self._columns is not None else len(self.rows())

    def __getitem__(self, index):  # type: ignore[no-untyped-def, override]
        return self.rows()[index]

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self.rows())
