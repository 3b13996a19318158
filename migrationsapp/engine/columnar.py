"""The vectorized path of a compiled entity: which fields run on columns, and one batch of them.

A batch's source rows become polars columns (a column whose values are not all of one kind —
text, 64-bit integers, booleans or dates — stays out), each field whose expression and
transform have a column form (engine.columnar_compile) is evaluated for the whole batch in
one ``select``, and the values come back with the rows the column form was unsure of. The
compiled entity (engine.compile) then finishes every value with the field's own last steps
(default, required, conversion) and sends the unsure rows through the row closure, so a value
or a RowError is always what the row path gives.

Which fields run on columns (the rule, measured on 5000-row batches, docs/mapping.md): a
field whose expression or transform has a column form and does some work — a function call
or an operator — except a lone ``trim``, ``lower``, ``upper`` or ``title``, which costs the
same both ways or less row by row (about 0.6 to 0.9 µs a value with its conversion), so it
keeps the row path. A plain column
(``{source: a, destination: b}``, or ``transform: value``) is faster row by row (0.6 µs
against 0.9 µs: the trip into polars and back is all the column form would do). Compiled
plans are kept per combination of the kinds of the columns read, so an expression is
compiled once per entity for each shape of batch it meets.
"""

from __future__ import annotations

import ast
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from migrationsapp.engine.columnar_compile import ColumnCompiler
from migrationsapp.engine.columnar_types import (
    DTYPES,
    INT64_MAX,
    INT64_MIN,
    Column,
    NoColumnForm,
    common_kind,
    either,
)
from migrationsapp.engine.expressions import Library
from migrationsapp.engine.row_columns import SourceRows

log = logging.getLogger(__name__)

# A field whose only work is one call of these keeps the row path: a tie, measured.
ROW_WINS = frozenset({"trim", "lower", "upper", "title"})
_OPERATORS = (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp)

# In ``row_wins``: every field with a column form runs on columns, plain ones too (tests).
EVERY_FIELD = "*"

_PYTHON_KINDS: dict[type, str] = {str: "str", int: "int", bool: "bool", dt.date: "date"}


@dataclass(frozen=True)
class FieldTrees:
    """What a field's value is made of, as syntax trees (None where the field has none)."""

    destination: str
    source: str | None
    expression: ast.expr | None
    transform: ast.expr | None


@dataclass(frozen=True)
class BatchColumns:
    """One batch evaluated on columns: per field position, the values and the unsure rows."""

    values: dict[int, list[Any]]
    unsure: dict[int, list[bool] | None]


def _work(tree: ast.AST | None, bodies: Callable[[str], ast.expr | None]) -> list[str]:
    """The operations a tree does, named functions' bodies included: the library functions
    it calls, and ``op`` for each operator."""
    found: list[str] = []
    pending = [tree] if tree is not None else []
    while pending:
        for node in ast.walk(pending.pop()):
            if isinstance(node, _OPERATORS):
                found.append("op")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                body = bodies(node.func.id)
                if body is None:
                    found.append(node.func.id)
                else:
                    pending.append(body)
    return found


def runs_on_columns(work: Sequence[str], row_wins: frozenset[str] = ROW_WINS) -> bool:
    """The rule: some work, and not one lone call of a function the row path does as fast."""
    return bool(work) and not (len(work) == 1 and work[0] in row_wins)


def _kind_of(values: Sequence[Any]) -> str:
    types = {type(value) for value in values} - {type(None)}
    if not types:
        return "null"
    if len(types) > 1:
        return "other"
    kind = _PYTHON_KINDS.get(types.pop(), "other")
    if kind == "int" and not all(INT64_MIN <= v <= INT64_MAX for v in values if v is not None):
        return "other"
    return kind


def _series(name: str, values: list[Any], kind: str) -> pl.Series | None:
    try:
        return pl.Series(name, values, dtype=DTYPES[kind], strict=True)
    except Exception:  # text polars cannot hold (a lone surrogate): that column stays out
        return None


class ColumnarEntity:
    """The fields of an entity that run on columns, compiled per shape of batch."""

    def __init__(
        self,
        fields: Sequence[FieldTrees],
        library: Library,
        bodies: Callable[[str], str | None],
        *,
        row_wins: frozenset[str] = ROW_WINS,
    ) -> None:
        self._compiler = ColumnCompiler(library, bodies)
        body_trees = self._compiler.body_tree
        self._fields: dict[int, FieldTrees] = {}
        for position, field in enumerate(fields):
            if field.source is None and field.expression is None:
                continue  # a constant: nothing to read
            work = _work(field.expression, body_trees) + _work(field.transform, body_trees)
            if runs_on_columns(work, row_wins) or EVERY_FIELD in row_wins:
                self._fields[position] = field
        self._reads: tuple[str, ...] = tuple(
            sorted({name for field in self._fields.values() for name in self._names(field)})
        )
        self._plans: dict[tuple[str, ...], dict[int, Column]] = {}

    @property
    def positions(self) -> frozenset[int]:
        """The fields (by position) that may run on columns."""
        return frozenset(self._fields)

    def _names(self, field: FieldTrees) -> set[str]:
        if field.source is not None:
            return {field.source}
        assert field.expression is not None
        return {node.id for node in ast.walk(field.expression) if isinstance(node, ast.Name)}

    def _plan(self, kinds: Mapping[str, str]) -> dict[int, Column]:
        key = tuple(kinds[name] for name in self._reads)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._compile(kinds)
        return plan

    def _compile(self, kinds: Mapping[str, str]) -> dict[int, Column]:
        sources = {
            name: Column(pl.col(name), kind) for name, kind in kinds.items() if kind in DTYPES
        }
        plan: dict[int, Column] = {}
        for position, field in self._fields.items():
            try:
                if field.source is not None:
                    if field.source not in sources:
                        continue
                    value = sources[field.source]
                else:
                    assert field.expression is not None
                    value = self._compiler.compile(field.expression, sources)
                if field.transform is not None:
                    value = self._compiler.compile(field.transform, {"value": value})
                common_kind(value)  # a list or a dict as the value: row-wise
            except NoColumnForm:
                continue
            if not value.constant:
                plan[position] = value
        return plan

    def evaluate(self, rows: Sequence[Mapping[str, Any]]) -> BatchColumns | None:
        """The fields that run on columns for these rows, or None when none does."""
        if not self._fields or not rows:
            return None
        source = rows if isinstance(rows, SourceRows) else SourceRows(rows)
        columns: dict[str, list[Any]] = {}
        kinds: dict[str, str] = {}
        for name in self._reads:
            try:
                columns[name] = source.column(name)
            except KeyError:  # the row path says which name is missing
                kinds[name] = "other"
                continue
            kinds[name] = _kind_of(columns[name])
        series = []
        for name, values in columns.items():
            built = _series(name, values, kinds[name]) if kinds[name] in DTYPES else None
            if built is None:
                kinds[name] = "other"
            else:
                series.append(built)
        plan = self._plan(kinds)
        if not plan:
            return None
        frame = pl.DataFrame(series)
        return _select(frame, plan, len(rows))


def _select(frame: pl.DataFrame, plan: Mapping[int, Column], height: int) -> BatchColumns:
    """Every planned field in one select; a field polars refuses to run goes row-wise."""
    try:
        return _run(frame, plan, height)
    except Exception as exc:  # a rare input polars refuses (a pattern past its size limit …)
        log.debug("columns: one select failed (%s); trying each field alone", exc)
    values: dict[int, list[Any]] = {}
    unsure: dict[int, list[bool] | None] = {}
    for position, column in plan.items():
        try:
            one = _run(frame, {position: column}, height)
        except Exception as exc:
            log.debug("columns: field %d runs row-wise: %s", position, exc)
            continue
        values |= one.values
        unsure |= one.unsure
    return BatchColumns(values, unsure)


def _run(frame: pl.DataFrame, plan: Mapping[int, Column], height: int) -> BatchColumns:
    exprs = []
    for position, column in plan.items():
        exprs.append(column.expr.alias(f"v{position}"))
        mask = either(column.unsure)
        if mask is not None:
            exprs.append(mask.fill_null(True).alias(f"u{position}"))
    # Lazy, so that a part several parts share (a condition and its unsure rows) runs once.
    result = frame.lazy().select(exprs).collect()
    values: dict[int, list[Any]] = {}
    unsure: dict[int, list[bool] | None] = {}
    for position in plan:
        values[position] = _full(result.get_column(f"v{position}").to_list(), height)
        name = f"u{position}"
        unsure[position] = (
            _full(result.get_column(name).to_list(), height) if name in result.columns else None
        )
    return BatchColumns(values, unsure)


def _full(values: list[Any], height: int) -> list[Any]:
    # A part that reads no column (a literal under a condition) comes back as one value.
    return values * height if len(values) == 1 and height != 1 else values
