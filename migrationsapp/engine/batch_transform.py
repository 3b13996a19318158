"""A batch's transform a field at a time: one list of values per field, then one dict per row.

``CompiledEntity.transform_batch`` (engine.compile) gives what ``transform`` gives row by
row. Each field's values are computed for the whole batch in one of three ways:

* a field evaluated on columns (engine.columnar) is finished by its last steps (default,
  required, conversion), its unsure rows by the row closure;
* a **plain** field (``{source: a, destination: b}``, perhaps a ``reference``) reads its
  source column and finishes it by its last steps; so does a field whose transform is one
  lone call of a text function the row path does as fast as polars (``trim``, ``lower``,
  ``upper``, ``title``: engine.columnar's ``ROW_WINS``), calling the library's function on
  each value without the expression's machinery around it;
* any other field runs its row closure on each row.

A column skips the last steps when they are the conversion alone (or a reference) and every
value of the batch already has the destination's exact Python type — a NULL only where the
column takes one, text without a NUL byte — or, for a reference, is one integer or one text
(its key text made without ``encode_key``'s general path): the rule, checked on each batch
and each field; any other batch of the field goes value by value.

A field's values are made by one ``map`` over the batch, which goes on after a row that fails.
A row fails with the error of its first failing field, in the order of the fields, as
``transform`` raises it; what later fields make of a failed row is dropped, an error included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from migrationsapp.engine.columnar import BatchColumns
from migrationsapp.engine.errors import RowError
from migrationsapp.engine.key_texts import value_key_text
from migrationsapp.engine.row_columns import RowColumns, SourceRows

Step = Callable[[Mapping[str, Any]], Any]
NONE_TYPE = type(None)
# What a lone text transform is called on directly: text, or NULL.
_TEXT = frozenset({str, NONE_TYPE})


@dataclass(frozen=True)
class BatchField:
    """One field as the batch computes it: its row closure and its last steps, and what a
    whole column may skip.

    ``keeps`` are the Python types the last steps return as they are (set when they are the
    conversion alone, or a reference: no default, no ``required``); ``source`` the column a
    plain field copies; ``reference`` makes a reference's value from the parent's key text;
    ``convert`` converts a whole column when the last steps are the conversion alone
    (convert_columns.column_conversion), or says None; ``apply`` is the library function a lone
    text transform calls on the source value.
    """

    destination: str
    step: Step
    tail: Callable[[Any], Any]
    source: str | None = None
    keeps: frozenset[type] | None = None
    reference: Callable[[str], Any] | None = None
    convert: Callable[[list[Any]], list[Any] | None] | None = None
    apply: Callable[[Any], Any] | None = None


def transform_columns(
    fields: Sequence[BatchField],
    rows: Sequence[Mapping[str, Any]],
    columns: BatchColumns | None,
) -> tuple[RowColumns, dict[int, RowError]]:
    """Each field's destination values, a column at a time, and the RowError of each row
    whose transform fails (by index; its first failing field's). A failed row holds NULL in
    every column."""
    source = rows if isinstance(rows, SourceRows) else SourceRows(rows)
    failed: dict[int, RowError] = {}
    computed: list[list[Any]] = []
    for position, field in enumerate(fields):
        values = columns.values.get(position) if columns is not None else None
        if values is not None:
            assert columns is not None
            column = _finished(field, values, columns.unsure.get(position), source, failed)
        elif field.source is not None:
            column = _copied(field, field.source, source, failed)
        else:
            column = _each_row(field, source.rows(), failed)
        computed.append(column)
    for index in failed:
        for column in computed:
            column[index] = None
    return RowColumns([field.destination for field in fields], computed, len(source)), failed


def transform_rows(
    fields: Sequence[BatchField],
    rows: Sequence[Mapping[str, Any]],
    columns: BatchColumns | None,
) -> list[dict[str, Any] | RowError]:
    """Each row's destination values, or the RowError of its first failing field."""
    values, failed = transform_columns(fields, rows, columns)
    outputs: list[Any] = (
        [dict(zip(values.names, row, strict=True)) for row in zip(*values.values, strict=True)]
        if values.names
        else [{} for _ in rows]
    )
    for index, error in failed.items():
        outputs[index] = error
    return outputs


def naming(exc: RowError, destination: str) -> RowError:
    """``exc`` naming the field, as ``CompiledEntity.transform`` raises it."""
    if exc.field is None:
        return RowError(exc.reason, field=destination, rule=exc.rule, value=exc.value)
    return exc


def _gather(
    destination: str,
    count: int,
    values_from: Callable[[int], Iterable[Any]],
    failed: dict[int, RowError],
) -> list[Any]:
    """The field's ``count`` values, ``values_from(i)`` giving them from row ``i`` on. A row
    whose value raises RowError fails with it (unless an earlier field failed it already),
    and the values go on from the next row; any other error is raised, as row by row."""
    column: list[Any] = []
    while len(column) < count:
        try:
            # extend keeps the values made before an error: the failing row is len(column).
            column.extend(values_from(len(column)))
        except Exception as exc:
            index = len(column)
            if index not in failed:
                if not isinstance(exc, RowError):
                    raise
                failed[index] = naming(exc, destination)
            column.append(None)
    return column


def _each_row(
    field: BatchField, rows: Sequence[Mapping[str, Any]], failed: dict[int, RowError]
) -> list[Any]:
    step = field.step
    return _gather(
        field.destination, len(rows), lambda start: map(step, islice(rows, start, None)), failed
    )


def _finished(
    field: BatchField,
    values: list[Any],
    unsure: list[bool] | None,
    source: SourceRows,
    failed: dict[int, RowError],
) -> list[Any]:
    """A field computed on columns, finished by its last steps; unsure rows by the closure."""
    step, tail = field.step, field.tail
    if unsure is None or not any(unsure):
        kept = _kept(field, values)
        if kept is not None:
            return kept
        return _gather(
            field.destination,
            len(values),
            lambda start: map(tail, islice(values, start, None)),
            failed,
        )
    row = source.row  # only an unsure row is looked at as one dict

    def values_from(start: int) -> Iterable[Any]:
        rest = islice(enumerate(zip(values, unsure, strict=True)), start, None)
        return (step(row(i)) if doubt else tail(value) for i, (value, doubt) in rest)

    return _gather(field.destination, len(values), values_from, failed)


def _kept(field: BatchField, values: list[Any]) -> list[Any] | None:
    """The values as the last steps leave them when every one is of a type they keep (the
    references made) or the whole column converts at once, or None: then each value goes
    through the last steps."""
    if field.keeps is None or not set(map(type, values)) <= field.keeps:
        return field.convert(values) if field.convert is not None else None
    if field.reference is not None:
        make = field.reference
        return [None if value is None else make(value_key_text(value)) for value in values]
    # PostgreSQL text cannot hold a NUL byte: such a value fails its row in the conversion.
    if str in field.keeps and "\x00" in "".join(filter(None, values)):
        return None
    return values


def _copied(
    field: BatchField, name: str, source: SourceRows, failed: dict[int, RowError]
) -> list[Any]:
    """A plain field: its source column (through a lone text transform), kept or made
    references when the whole batch allows, else each value through the field's last steps."""
    try:
        # A list of the field's own: later steps write into a batch's columns (references).
        raw = list(source.column(name))
    except Exception:  # a row without the column: the row closure says so, as before
        return _each_row(field, source.rows(), failed)
    count = len(raw)
    apply = field.apply
    if apply is not None:
        if not set(map(type, raw)) <= _TEXT:
            # The row path says what fails, and how.
            return _each_row(field, source.rows(), failed)
        source_values = raw
        raw = _gather(
            field.destination,
            count,
            lambda start: map(apply, islice(source_values, start, None)),
            failed,
        )
    kept = _kept(field, raw)
    if kept is not None:
        return kept
    tail = field.tail
    return _gather(
        field.destination, count, lambda start: map(tail, islice(raw, start, None)), failed
    )
