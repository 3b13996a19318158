"""The checks that need the introspected tables: columns exist, types fit, every NOT NULL
column without a default is filled; and the columns a row's content hash covers."""

from __future__ import annotations

from migrationsapp.engine.connectors import TableInfo
from migrationsapp.engine.errors import ExpressionError, MappingError, MappingProblem
from migrationsapp.engine.transforms import (
    FunctionLibrary,
    compile_expression,
)

from .checks import _compile_field, _compile_library, _field_label
from .spec import SELF_REFERENCE, UUID_KIND, EntitySpec


def check_against_tables(
    entity: EntitySpec,
    source: TableInfo | None,
    destination: TableInfo | None,
    *,
    library: FunctionLibrary | None = None,
) -> list[MappingProblem]:
    """The introspection checks of one entity: tables and columns exist and fit."""
    problems: list[MappingProblem] = []

    def add(reason: str, field: str | None = None) -> None:
        problems.append(MappingProblem(entity=entity.name, field=field, reason=reason))

    if library is None:
        library, _ = _compile_library(entity.functions)
    if source is None:
        add(f"source table {entity.source_table!r} does not exist in the source database")
    else:
        missing = f"does not exist in source table {source.name!r}"
        not_a_column = f"which is not a column of source table {source.name!r}"
        for column in entity.source_key:
            if source.column(column) is None:
                add(f"source_key column {column!r} {missing}")
        if entity.timestamp_column and source.column(entity.timestamp_column) is None:
            add(f"timestamp_column {entity.timestamp_column!r} {missing}")
        for position, field in enumerate(entity.fields):
            label = _field_label(field, position)
            if field.source is not None and source.column(field.source) is None:
                add(f"source column {field.source!r} {missing}", label)
            expression = _compile_field(field, library)[0]
            for name in sorted(expression.names if expression is not None else ()):
                if source.column(name) is None:
                    add(f"expression reads {name!r}, {not_a_column}", label)

    if destination is None:
        where = "does not exist in the destination database"
        add(f"destination table {entity.destination_table!r} {where}")
        return problems
    missing = f"does not exist in destination table {destination.name!r}"
    key = destination.column(entity.destination_key)
    if key is None:
        add(f"destination_key {entity.destination_key!r} {missing}")
    elif key.kind != UUID_KIND:
        kind = f"{key.kind} ({key.sql_type})"
        add(f"destination_key {entity.destination_key!r} must be a uuid column, not {kind}")
    if entity.soft_delete_column and destination.column(entity.soft_delete_column) is None:
        add(f"soft_delete_column {entity.soft_delete_column!r} {missing}")
    for column in entity.match_on:
        if destination.column(column) is None:
            add(f"match_on column {column!r} {missing}")
    filled = set()
    for position, field in enumerate(entity.fields):
        label = _field_label(field, position)
        filled.add(field.destination)
        info = destination.column(field.destination)
        if info is None:
            add(f"destination column {field.destination!r} {missing}", label)
        elif field.reference is not None and info.kind != UUID_KIND:
            kind = f"{info.kind} ({info.sql_type})"
            add(f"a reference fills a uuid column; {field.destination!r} is {kind}", label)
        elif field.reference == SELF_REFERENCE and not info.nullable:
            # The row is written first with the column NULL and pointed at its parent in a
            # second pass, once the parent exists (engine.selfref).
            add(
                f"reference: self fills {field.destination!r} in a second pass, after every "
                "row is written, so the column must be nullable; it is NOT NULL",
                label,
            )
    for column in destination.columns.values():
        if column.name == entity.destination_key or column.name in filled:
            continue
        if not column.nullable and not column.has_default and not column.autoincrement:
            reason = "is NOT NULL with no default and no field fills it"
            add(f"destination column {column.name!r} {reason}", column.name)
    return problems


def hashed_columns(entity: EntitySpec, library: FunctionLibrary | None = None) -> tuple[str, ...]:
    """The source columns a row's content hash covers: the key (in key order), then every
    ``source`` column and every column an ``expression`` reads, sorted. The timestamp column
    is not among them unless a field maps it, so a touched-only row is not a modification."""
    if library is None:
        library, problems = _compile_library(entity.functions)
        if problems:
            raise MappingError([_with_entity(p, entity.name) for p in problems])
    key = list(dict.fromkeys(entity.source_key))
    others: set[str] = set()
    for field in entity.fields:
        if field.source is not None:
            others.add(field.source)
        if field.expression is not None:
            try:
                others |= set(compile_expression(field.expression, library).names)
            except ExpressionError as exc:
                problem = MappingProblem(
                    entity=entity.name, field=field.destination, reason=str(exc)
                )
                raise MappingError([problem]) from exc
    return (*key, *sorted(others - set(key)))


def _with_entity(problem: MappingProblem, entity: str) -> MappingProblem:
    return MappingProblem(
        entity=problem.entity or entity, field=problem.field, reason=problem.reason
    )
