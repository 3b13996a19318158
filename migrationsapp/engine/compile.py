"""The row transformer: an EntitySpec compiled against its introspected tables.

``compile_entity`` checks the spec once more against the tables it will run on (the
destination may have changed since the import), compiles every expression, and builds one
closure per field, so that ``CompiledEntity.transform`` does no per-row look-ups beyond
calling them. Per field, in order:

1. the value: ``row[source]``, ``expression.evaluate(row)``, or the default (a constant);
2. ``transform`` applied to it (it sees ``value``);
3. a null value becomes the field's ``default`` when one is given;
4. ``required`` refuses a null or blank value;
5. a ``reference`` becomes a ``ReferenceValue`` (the parent's legacy key, translated into
   its destination UUID by the runner through the record map); any other value is
   converted to the destination column's type.

Every failure is a ``RowError`` naming the destination field, so the row is quarantined
with a reason a person can act on. No Django here.

``transform_batch`` gives the same for a whole batch, a field at a time
(engine.batch_transform): fields whose expressions have a column form run on polars columns
(engine.columnar), steps 3 to 5 stay the field's own closure, and every row the column form is
unsure of runs through the row closure; a plain field copies its column when the batch's
values need no conversion.
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from migrationsapp.engine.batch_transform import (
    NONE_TYPE,
    BatchField,
    transform_columns,
    transform_rows,
)
from migrationsapp.engine.builtin_functions import BUILTIN_FUNCTIONS
from migrationsapp.engine.columnar import ROW_WINS, ColumnarEntity, FieldTrees
from migrationsapp.engine.connectors import ColumnInfo, TableInfo
from migrationsapp.engine.convert import convert_value
from migrationsapp.engine.convert_columns import column_conversion
from migrationsapp.engine.errors import ExpressionError, MappingError, MappingProblem, RowError
from migrationsapp.engine.expressions import parse_expression
from migrationsapp.engine.ids import encode_key
from migrationsapp.engine.mapping import (
    SELF_REFERENCE,
    EntitySpec,
    FieldSpec,
    check_against_tables,
    check_entity,
    hashed_columns,
)
from migrationsapp.engine.row_columns import RowColumns, SourceRows
from migrationsapp.engine.transforms import (
    Expression,
    FunctionLibrary,
    compile_expression,
    compile_functions,
    compile_transform,
    transform_source,
)

Step = Callable[[Mapping[str, Any]], Any]

# The Python type each column kind holds as is (exact class: a bool is not an integer
# here, a datetime is not a date).
_READY_TYPES: dict[str, type] = {
    "text": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "date": dt.date,
    "uuid": uuid.UUID,
}


@dataclass(frozen=True)
class ReferenceValue:
    """A parent's legacy key, to be translated into its destination UUID by the runner."""

    entity: str
    key_text: str


class CompiledEntity:
    """An entity ready to transform source rows into destination rows."""

    __slots__ = (
        "_batch_fields",
        "_columnar",
        "_steps",
        "_tails",
        "destination_columns",
        "hashed_columns",
        "library",
        "reference_fields",
        "source_columns",
        "spec",
        "timezone",
    )

    def __init__(
        self,
        *,
        spec: EntitySpec,
        hashed_columns: tuple[str, ...],
        source_columns: tuple[str, ...],
        reference_fields: dict[str, str],
        timezone: dt.tzinfo,
        library: FunctionLibrary,
        steps: tuple[tuple[str, Step], ...],
        tails: tuple[Callable[[Any], Any], ...] = (),
        columnar: ColumnarEntity | None = None,
        batch_fields: tuple[BatchField, ...] = (),
    ) -> None:
        self.spec = spec
        self.hashed_columns = hashed_columns
        self.source_columns = source_columns
        self.destination_columns = tuple(name for name, _ in steps)
        self.reference_fields = reference_fields
        self.timezone = timezone
        self.library = library
        self._steps = steps
        self._tails = tails
        self._columnar = columnar if tails else None
        # Without them, a batch runs every field's row closure.
        self._batch_fields = batch_fields or tuple(BatchField(n, step, step) for n, step in steps)

    def transform(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The destination values of one source row (without the destination key).

        Raises RowError naming the destination field whose value failed.
        """
        out: dict[str, Any] = {}
        destination = ""
        try:
            for destination, step in self._steps:
                out[destination] = step(row)
        except RowError as exc:
            if exc.field is None:
                raise RowError(
                    exc.reason, field=destination, rule=exc.rule, value=exc.value
                ) from exc
            raise
        return out

    @property
    def columnar(self) -> ColumnarEntity | None:
        """The fields that run on columns in ``transform_batch`` (None: every one row-wise)."""
        return self._columnar

    def transform_batch(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any] | RowError]:
        """Each row's destination values, or the RowError that fails it: what ``transform``
        gives row by row, with the fields that have a column form computed on columns."""
        columns = self._columnar.evaluate(rows) if self._columnar is not None else None
        return transform_rows(self._batch_fields, rows, columns)

    def transform_columns(
        self, rows: Sequence[Mapping[str, Any]] | SourceRows
    ) -> tuple[RowColumns, dict[int, RowError]]:
        """``transform_batch`` a column at a time: the destination columns' values (NULL in
        every column of a failed row), and the RowError of each failed row by index."""
        source = rows if isinstance(rows, SourceRows) else SourceRows(rows)
        columns = self._columnar.evaluate(source) if self._columnar is not None else None
        return transform_columns(self._batch_fields, source, columns)

    def __repr__(self) -> str:
        return f"CompiledEntity({self.spec.name!r}, {len(self._steps)} fields)"


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _getter(field: FieldSpec, expression: Expression | None) -> tuple[Step, str]:
    """How the field's raw value is read from a row, and how to name it in a message."""
    if field.source is not None:
        return operator.itemgetter(field.source), f"source column {field.source!r}"
    if expression is not None:
        return expression.evaluate, "the expression's value"
    constant = field.default
    return (lambda _row: constant), "the default"


def _finisher(
    field: FieldSpec, column: ColumnInfo, parent: str | None, tz: dt.tzinfo
) -> Callable[[Any], Any]:
    """The last step: a reference, or a conversion to the destination column's type."""
    destination = field.destination
    not_null = not column.nullable

    def empty() -> None:
        # A NULL into a NOT NULL column would fail the whole batch at the database; refuse
        # the one row instead.
        if not_null:
            raise RowError(
                f"destination column {destination!r} is NOT NULL and the value is empty",
                field=destination,
                rule="required",
            )

    if parent is not None:

        def reference(value: Any) -> Any:
            if value is None:
                return empty()
            values = value if isinstance(value, list | tuple) else (value,)
            return ReferenceValue(parent, encode_key(values))

        return reference

    kind, scale = column.kind, column.scale
    # Values that already have the column's exact type come out of convert_value unchanged:
    # skip the call for them (most text and integer columns, on most rows).
    ready = _READY_TYPES.get(kind) if scale is None else None

    def convert(value: Any) -> Any:
        if value is None:
            return empty()
        # Text with a NUL byte goes to convert_value, which refuses it naming the field.
        if value.__class__ is ready and not (ready is str and "\x00" in value):
            return value
        return convert_value(value, kind, tz=tz, scale=scale, column=destination)

    return convert


def _step(
    field: FieldSpec,
    expression: Expression | None,
    transform: Expression | None,
    finish: Callable[[Any], Any],
) -> tuple[Step, Callable[[Any], Any]]:
    """The field's closure for a row, and its last steps (default, required, conversion)
    for a value computed elsewhere (on columns)."""
    get, origin = _getter(field, expression)
    apply = transform.evaluate if transform is not None else None
    has_default = field.has_default
    default = field.default
    required = field.required
    destination = field.destination

    if apply is None and not has_default and not required:
        # The common field, `{source: a, destination: b}`: read and convert, nothing else.
        def plain(row: Mapping[str, Any]) -> Any:
            return finish(get(row))

        return plain, finish

    def tail(value: Any) -> Any:
        if value is None and has_default:
            value = default
        if required and _is_blank(value):
            raise RowError(
                f"required: {origin} is empty", field=destination, rule="required", value=value
            )
        return finish(value)

    def step(row: Mapping[str, Any]) -> Any:
        value = get(row)
        if apply is not None:
            value = apply({"value": value})
        return tail(value)

    return step, tail


def _batch_field(
    field: FieldSpec,
    column: ColumnInfo,
    parent: str | None,
    step: Step,
    tail: Callable,
    tz: dt.tzinfo,
    library: FunctionLibrary,
) -> BatchField:
    """The field as a batch computes it (engine.batch_transform): what its last steps keep as
    it is, when they are the conversion alone or a reference, and the column a plain field
    or a lone text transform reads."""
    apply = _lone_text_function(field, library)
    plain = field.source if field.transform is None or apply is not None else None
    if field.has_default or field.required:
        return BatchField(field.destination, step, tail, plain, apply=apply)
    empty = {NONE_TYPE} if column.nullable else set()
    if parent is not None:
        # A key of one integer or one text: its text is made without encode_key's general path.
        make = functools.partial(ReferenceValue, parent)
        refs = frozenset({int, str, *empty})
        return BatchField(field.destination, step, tail, plain, refs, make, apply=apply)
    ready = _READY_TYPES.get(column.kind) if column.scale is None else None
    keeps = frozenset({ready, *empty}) if ready is not None else None
    convert = column_conversion(column.kind, tz=tz, scale=column.scale, nullable=column.nullable)
    return BatchField(field.destination, step, tail, plain, keeps, convert=convert, apply=apply)


def _lone_text_function(field: FieldSpec, library: FunctionLibrary) -> Callable | None:
    """The library's own function when the field's transform is one lone call of a text
    function the row path keeps (``transform: trim`` or ``trim(value)``, on a source column),
    None otherwise."""
    if field.source is None or field.transform is None:
        return None
    tree = parse_expression(transform_source(field.transform, library), label="transform")
    if not (
        isinstance(tree, ast.Call)
        and isinstance(tree.func, ast.Name)
        and tree.func.id in ROW_WINS
        and not tree.keywords
        and len(tree.args) == 1
        and isinstance(tree.args[0], ast.Name)
        and tree.args[0].id == "value"
    ):
        return None
    name = tree.func.id
    # Not a named function of the mapping's: the library's builtin, text in, text out.
    if library.body(name) is not None or library.function(name) is not BUILTIN_FUNCTIONS[name]:
        return None
    return library.function(name)


def _trees(field: FieldSpec, library: FunctionLibrary) -> FieldTrees:
    """The field's expression and transform as syntax trees, for the vectorized path."""
    expression = transform = None
    if field.expression is not None:
        expression = parse_expression(field.expression, label="expression")
    if field.transform is not None:
        source = transform_source(field.transform, library)
        transform = parse_expression(source, label="transform")
    return FieldTrees(field.destination, field.source, expression, transform)


def compile_entity(
    spec: EntitySpec,
    source: TableInfo,
    destination: TableInfo,
    *,
    timezone: dt.tzinfo,
    row_wins: frozenset[str] = ROW_WINS,
) -> CompiledEntity:
    """Check the spec against its tables and build its row transformer.

    ``timezone`` is the source connection's zone (that of naive source timestamps);
    ``row_wins`` the functions that, called alone, keep a field row-wise (engine.columnar;
    ``frozenset({"*"})`` puts every field with a column form on columns).
    Raises MappingError listing every problem.
    """
    try:
        library = compile_functions(dict(spec.functions))
    except ExpressionError:
        library = None  # check_entity reports each function that does not compile
    problems: list[MappingProblem] = check_entity(spec, library=library)
    problems += check_against_tables(spec, source, destination, library=library)
    if problems or library is None:
        raise MappingError(problems)

    references: dict[str, str] = {}
    steps: list[tuple[str, Step]] = []
    tails: list[Callable[[Any], Any]] = []
    batch_fields: list[BatchField] = []
    for field in spec.fields:
        expression = (
            compile_expression(field.expression, library) if field.expression is not None else None
        )
        transform = (
            compile_transform(field.transform, library) if field.transform is not None else None
        )
        parent = None
        if field.reference is not None:
            parent = spec.name if field.reference == SELF_REFERENCE else field.reference
            references[field.destination] = parent
        column = destination.column(field.destination)
        assert column is not None  # check_against_tables refused a missing column
        step, tail = _step(field, expression, transform, _finisher(field, column, parent, timezone))
        steps.append((field.destination, step))
        tails.append(tail)
        batch_fields.append(_batch_field(field, column, parent, step, tail, timezone, library))

    hashed = hashed_columns(spec, library)
    read = list(hashed)
    # The timestamp is read (detection needs it) but is not part of the content hash.
    if spec.detection != "hash" and spec.timestamp_column and spec.timestamp_column not in read:
        read.append(spec.timestamp_column)
    return CompiledEntity(
        spec=spec,
        hashed_columns=hashed,
        source_columns=tuple(read),
        reference_fields=references,
        timezone=timezone,
        library=library,
        steps=tuple(steps),
        tails=tuple(tails),
        batch_fields=tuple(batch_fields),
        columnar=ColumnarEntity(
            [_trees(field, library) for field in spec.fields],
            library,
            library.body,
            row_wins=row_wins,
        ),
    )
