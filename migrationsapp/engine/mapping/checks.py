"""The checks that need no database: names, enumerations, references, cycles,
expressions that compile, connection URLs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from migrationsapp.engine.connection_policy import template_problems
from migrationsapp.engine.connectors import ConnectionSpec, placeholder_names
from migrationsapp.engine.errors import ExpressionError, MappingError, MappingProblem
from migrationsapp.engine.expressions import did_you_mean
from migrationsapp.engine.transforms import (
    Expression,
    FunctionLibrary,
    compile_expression,
    compile_library,
    compile_transform,
)
from migrationsapp.engine.validation import compile_rules

from .order import _cycle_problem, _order
from .spec import (
    DELETE_POLICIES,
    DETECTIONS,
    ENTITY_NAME,
    PLACEHOLDER_PREFIX,
    SELF_REFERENCE,
    SUPPORTED_VERSION,
    EntitySpec,
    FieldSpec,
    MappingFile,
)


def _compile_library(functions: Mapping[str, str]) -> tuple[FunctionLibrary, list[MappingProblem]]:
    """The function library, and a problem per function that does not compile.

    The library returned holds the functions that do compile, so that the entities'
    expressions are still checked (and their own problems reported) in the same pass. Each
    function is compiled once (``compile_library``), so thousands of them check in linear time.
    """
    library, errors = compile_library(dict(functions))
    return library, [MappingProblem(entity=None, field=None, reason=str(e)) for e in errors]


# A bare ``transform: titel`` is refused before it is parsed, without the names it could mean.
_UNKNOWN_FUNCTION = re.compile(r"unknown function '(?P<name>[A-Za-z_][A-Za-z0-9_]*)'$")


def _with_suggestion(reason: str, library: FunctionLibrary) -> str:
    """``reason`` with "did you mean `title`?" when it ends on an unknown function name."""
    match = _UNKNOWN_FUNCTION.search(reason)
    return reason + did_you_mean(match["name"], library.names) if match else reason


def _field_label(field: FieldSpec, position: int) -> str:
    return field.destination or f"#{position + 1}"


def _compile_field(
    field: FieldSpec, library: FunctionLibrary
) -> tuple[Expression | None, Expression | None, list[tuple[str, str]]]:
    """(expression, transform, [(key, reason)]) for one field; None where absent or refused."""
    errors: list[tuple[str, str]] = []
    expression = transform = None
    if field.expression is not None:
        try:
            expression = compile_expression(field.expression, library)
        except ExpressionError as exc:
            errors.append(("expression", str(exc)))
    if field.transform is not None:
        try:
            transform = compile_transform(field.transform, library)
        except ExpressionError as exc:
            errors.append(("transform", _with_suggestion(str(exc), library)))
    return expression, transform, errors


def _entity_problems(
    entity: EntitySpec,
    *,
    library: FunctionLibrary,
    known: Sequence[str] | None,
    flagged: set[str] | frozenset[str] = frozenset(),
    label: str | None = None,
) -> list[MappingProblem]:
    problems: list[MappingProblem] = []
    label = entity.name or label or "?"

    def add(key: str, reason: str, field: str | None = None) -> None:
        if key not in flagged:
            problems.append(MappingProblem(entity=label, field=field, reason=reason))

    if not entity.name:
        add("name", "an entity needs a name")
    elif not ENTITY_NAME.match(entity.name):
        add("name", f"entity name {entity.name!r} may use only a-z, 0-9 and _")
    elif entity.name == SELF_REFERENCE:
        add("name", "'self' cannot name an entity: `reference: self` means the entity itself")
    for key in ("source_table", "destination_table", "destination_key"):
        if not getattr(entity, key):
            add(key, f"{key} is required")
    if not entity.source_key:
        add("source_key", "source_key must list at least one column")
    for column in _repeated(entity.source_key):
        add("source_key", f"source_key lists {column!r} more than once")
    if entity.detection not in DETECTIONS:
        add(
            "detection",
            f"detection must be one of {', '.join(DETECTIONS)}, not {entity.detection!r}",
        )
    elif entity.detection != "hash" and not entity.timestamp_column:
        add("timestamp_column", f"detection {entity.detection!r} needs timestamp_column")
    if entity.deletes not in DELETE_POLICIES:
        add(
            "deletes",
            f"deletes must be one of {', '.join(DELETE_POLICIES)}, not {entity.deletes!r}",
        )
    elif entity.deletes == "soft" and not entity.soft_delete_column:
        add("soft_delete_column", "deletes 'soft' needs soft_delete_column")
    if not 0 <= entity.max_delete_share <= 1:
        add(
            "max_delete_share",
            f"max_delete_share must be between 0 and 1, not {entity.max_delete_share}",
        )

    for parent in entity.depends_on:
        if parent == entity.name:
            add(
                "depends_on",
                "an entity cannot depend on itself "
                "(a field pointing at its own rows uses `reference: self`)",
            )
        elif known is not None and parent not in known:
            add(
                "depends_on", f"depends_on names {parent!r}, which is not an entity of this mapping"
            )
    for parent in _repeated(entity.depends_on):
        add("depends_on", f"depends_on lists {parent!r} more than once")

    seen: set[str] = set()
    for position, field in enumerate(entity.fields):
        name = _field_label(field, position)
        key = f"fields.{position}."
        if not field.destination:
            add(key + "destination", "a field needs a destination", name)
        elif field.destination in seen:
            add(
                key + "destination",
                f"destination {field.destination!r} is filled by more than one field",
                name,
            )
        seen.add(field.destination)
        if field.destination and field.destination == entity.destination_key:
            add(
                key + "destination",
                f"{field.destination!r} is the destination_key, which diffmig fills; "
                "map the legacy key to another column (e.g. legacy_id)",
                name,
            )
        if field.source is not None and field.expression is not None:
            add(key + "source", "a field has either source or expression, not both", name)
        elif field.source is None and field.expression is None and not field.has_default:
            add(
                key + "source",
                "a field needs source or expression (or a default, for a constant)",
                name,
            )
        if (
            field.reference is not None
            and field.reference != SELF_REFERENCE
            and field.reference not in entity.depends_on
        ):
            add(
                key + "reference",
                f"reference {field.reference!r} must be 'self' or an entity listed in depends_on",
                name,
            )
        for error_key, reason in _compile_field(field, library)[2]:
            add(key + error_key, reason, name)

    destination_fields = [f.destination for f in entity.fields if f.destination]
    if entity.validation:
        try:
            compile_rules(entity.name, list(entity.validation), destination_fields)
        except MappingError as exc:
            for problem in exc.problems:
                problems.append(
                    MappingProblem(
                        entity=problem.entity or label, field=problem.field, reason=problem.reason
                    )
                )
    return problems


def _repeated(names: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


def check_entity(
    entity: EntitySpec,
    *,
    known_entities: Sequence[str] | None = None,
    library: FunctionLibrary | None = None,
) -> list[MappingProblem]:
    """The structural problems of one entity (``known_entities`` enables the depends_on check)."""
    problems: list[MappingProblem] = []
    if library is None:
        library, problems = _compile_library(entity.functions)
    return problems + _entity_problems(entity, library=library, known=known_entities)


def _connection_problems(
    name: str, connection: ConnectionSpec, flagged: set[str]
) -> list[MappingProblem]:
    problems: list[MappingProblem] = []

    def add(reason: str) -> None:
        problems.append(
            MappingProblem(entity=None, field=None, reason=f"connection {name!r}: {reason}")
        )

    if not connection.url and f"connections.{name}.url" not in flagged:
        add("url is required")
    for text in (connection.url, connection.timezone, connection.schema or ""):
        for variable in placeholder_names(text):
            if not variable.startswith(PLACEHOLDER_PREFIX):
                add(
                    f"${{{variable}}} is refused: only variables whose names begin with "
                    f"{PLACEHOLDER_PREFIX} are expanded"
                )
    # The connection policy's own rules for a URL as written (driver options, the password).
    for problem in template_problems(connection.url):
        add(problem)
    if not placeholder_names(connection.timezone):
        try:
            ZoneInfo(connection.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            add(
                f"unknown timezone {connection.timezone!r} "
                "(use an IANA name such as UTC or Europe/Paris)"
            )
    return problems


def _structure_problems(
    mapping: MappingFile, flagged: set[str], entity_flagged: Mapping[int, set[str]]
) -> list[MappingProblem]:
    problems: list[MappingProblem] = []

    def add(reason: str) -> None:
        problems.append(MappingProblem(entity=None, field=None, reason=reason))

    if "version" not in flagged and mapping.version != SUPPORTED_VERSION:
        add(
            f"version {mapping.version} is not supported; "
            f"this diffmig reads version: {SUPPORTED_VERSION}"
        )
    for name, connection in mapping.connections.items():
        problems.extend(_connection_problems(name, connection, flagged))
    for key in ("source", "destination"):
        value = getattr(mapping, key)
        if key in flagged:
            continue
        if not value:
            add(f"{key} is required: the name of the {key} connection")
        elif value not in mapping.connections:
            known = ", ".join(mapping.connections) or "none"
            add(f"{key} {value!r} is not a connection of this file (connections: {known})")
    library, library_problems = _compile_library(mapping.functions)
    problems.extend(library_problems)

    names = [e.name for e in mapping.entities]
    for name in _repeated([n for n in names if n]):
        problems.append(
            MappingProblem(
                entity=name, field=None, reason=f"entity name {name!r} is used more than once"
            )
        )
    for position, entity in enumerate(mapping.entities):
        problems.extend(
            _entity_problems(
                entity,
                library=library,
                known=names,
                flagged=entity_flagged.get(position, set()),
                label=f"#{position + 1}",
            )
        )
    # Self-dependencies are reported above with their own reason: not part of the cycle search.
    _, cycle = _order([_without_self(e) for e in mapping.entities])
    if cycle is not None:
        problems.append(_cycle_problem(cycle))
    return problems


def _without_self(entity: EntitySpec) -> EntitySpec:
    if entity.name not in entity.depends_on:
        return entity
    return EntitySpec(
        name=entity.name,
        source_table=entity.source_table,
        source_key=entity.source_key,
        destination_table=entity.destination_table,
        depends_on=tuple(d for d in entity.depends_on if d != entity.name),
    )


def check_structure(mapping: MappingFile) -> None:
    """Every check that needs no database; a MappingError lists all problems."""
    problems = _structure_problems(mapping, set(), {})
    if problems:
        raise MappingError(problems)
