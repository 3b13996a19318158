"""Entities built by hand for the vectorized-path tests, and both paths' outcomes side by side."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from migrationsapp.engine.columnar import EVERY_FIELD
from migrationsapp.engine.compile import CompiledEntity, compile_entity
from migrationsapp.engine.connectors import ColumnInfo, TableInfo
from migrationsapp.engine.errors import RowError
from migrationsapp.engine.mapping import EntitySpec, FieldSpec
from migrationsapp.engine.row_columns import RowColumns, SourceRows

# text, text, int, int, bool, mixed, dates (with datetimes and text), decimals
SOURCE_COLUMNS = ("id", "s", "t", "n", "m", "f", "x", "d", "p")


def _column(name: str, kind: str, *, nullable: bool = True, scale: int | None = None) -> ColumnInfo:
    return ColumnInfo(
        name=name,
        kind=kind,
        sql_type=kind.upper(),
        nullable=nullable,
        has_default=False,
        primary_key=name == "id",
        scale=scale,
    )


def build_entity(
    fields: Sequence[FieldSpec],
    *,
    kinds: Mapping[str, str] | None = None,
    functions: Mapping[str, str] | None = None,
    every_field: bool = True,
    not_null: frozenset[str] = frozenset(),
    depends_on: tuple[str, ...] = (),
    scales: Mapping[str, int] | None = None,
) -> CompiledEntity:
    """An entity over SOURCE_COLUMNS; each destination column of kind ``other`` (values kept
    as they are) unless ``kinds`` says otherwise, nullable unless named in ``not_null``.
    ``every_field`` puts every field with a column form on columns, whatever the rule that
    picks them in a run."""
    kinds = kinds or {}
    spec = EntitySpec(
        name="thing",
        source_table="things",
        source_key=("id",),
        destination_table="thing",
        fields=tuple(fields),
        functions=dict(functions or {}),
        depends_on=depends_on,
    )
    source = TableInfo(
        name="things",
        schema=None,
        columns={name: _column(name, "other") for name in SOURCE_COLUMNS},
        primary_key=("id",),
    )
    destination_columns = [_column("id", "uuid")] + [
        _column(
            f.destination,
            kinds.get(f.destination, "other"),
            nullable=f.destination not in not_null,
            scale=(scales or {}).get(f.destination),
        )
        for f in fields
    ]
    destination = TableInfo(
        name="thing",
        schema=None,
        columns={c.name: c for c in destination_columns},
        primary_key=("id",),
    )
    options = {"row_wins": frozenset({EVERY_FIELD})} if every_field else {}
    return compile_entity(spec, source, destination, timezone=dt.UTC, **options)


def outcome(result: Any) -> Any:
    """A row's result in a comparable form: values with their exact types, or the error."""
    if isinstance(result, RowError):
        return ("error", result.field, result.rule, result.reason, repr(result.value))
    return sorted((key, type(value).__name__, repr(value)) for key, value in result.items())


def row_path(compiled: CompiledEntity, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    results: list[Any] = []
    for row in rows:
        try:
            results.append(outcome(compiled.transform(row)))
        except RowError as error:
            results.append(outcome(error))
    return results


def batch_path(compiled: CompiledEntity, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The batch's outcomes from its rows as dicts; the same, when every row has the same
    columns, from those rows read as columns (a key-range read's batch)."""
    results = [outcome(result) for result in compiled.transform_batch(rows)]
    names = list(rows[0]) if rows else []
    if all(list(row) == names for row in rows):
        source = SourceRows(columns=RowColumns.of_rows(rows, names))
        values, failed = compiled.transform_columns(source)
        from_columns = [
            outcome(failed[index] if index in failed else values.row(index))
            for index in range(len(rows))
        ]
        assert from_columns == results
    return results
