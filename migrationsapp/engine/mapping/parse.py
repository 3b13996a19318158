"""Reading a mapping file's data (what ``yaml_file.py`` loads) into spec objects, collecting
every problem at once."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from migrationsapp.engine.connectors import ConnectionSpec
from migrationsapp.engine.errors import MappingError, MappingProblem
from migrationsapp.engine.validation import RuleSpec

from .checks import _structure_problems
from .spec import (
    CONNECTION_KEYS,
    DEFAULT_MAX_DELETE_SHARE,
    ENTITY_KEYS,
    FIELD_KEYS,
    MISSING,
    RULE_KEYS,
    SUPPORTED_VERSION,
    TOP_KEYS,
    EntitySpec,
    FieldSpec,
    FrozenMap,
    MappingFile,
)


class _Reader:
    """Reads one raw mapping (dict) and collects problems instead of stopping at the first.

    Keys whose presence or type is wrong are remembered in ``flagged``, so that the value
    checks that follow do not report the same mistake a second time.
    """

    def __init__(self, raw: Mapping[str, Any], *, entity: str | None, field: str | None) -> None:
        self.raw = raw
        self.entity = entity
        self.field = field
        self.problems: list[MappingProblem] = []
        self.flagged: set[str] = set()

    def problem(self, key: str | None, reason: str) -> None:
        self.problems.append(MappingProblem(entity=self.entity, field=self.field, reason=reason))
        if key is not None:
            self.flagged.add(key)

    def unknown_keys(self, allowed: Sequence[str], what: str) -> None:
        for key in self.raw:
            if key not in allowed:
                self.problem(
                    None, f"unknown key {key!r} in {what}; allowed keys: {', '.join(allowed)}"
                )

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return default
        if isinstance(value, str):
            return value
        self.problem(key, f"{key} must be text, not {_describe(value)}")
        return default

    def names(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)  # `source_key: id` is read as `[id]`
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        self.problem(key, f"{key} must be a list of names, not {_describe(value)}")
        return ()

    def items(self, key: str) -> list[Any]:
        value = self.raw.get(key)
        if value is None:
            return []
        if isinstance(value, list):
            return value
        self.problem(key, f"{key} must be a list, not {_describe(value)}")
        return []


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _plain_value(value: Any) -> Any:
    """A default or rule parameter as JSON-safe data (YAML dates become ISO text).

    Stored definitions are JSON: keeping YAML's date objects would make a stored entity
    differ from the file it came from, and every import would then make a new version.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be stored; use a finite number or null")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain_value(v) for k, v in value.items()}
    raise ValueError(f"{_describe(value)} cannot be stored; use text, a number, true/false or null")


def _parse_field(
    raw: Any, position: int
) -> tuple[FieldSpec | None, set[str], list[MappingProblem]]:
    label = f"#{position + 1}"
    if not isinstance(raw, Mapping):
        problem = MappingProblem(
            entity=None,
            field=label,
            reason=f"a field is a mapping like {{source: x, destination: y}}, not {_describe(raw)}",
        )
        return None, set(), [problem]
    destination = raw.get("destination")
    reader = _Reader(
        raw,
        entity=None,
        field=destination if isinstance(destination, str) and destination else label,
    )
    reader.unknown_keys(FIELD_KEYS, "a field")
    required = raw.get("required", False)
    if not isinstance(required, bool):
        reader.problem("required", f"required must be true or false, not {_describe(required)}")
        required = False
    default = MISSING
    if "default" in raw:
        try:
            default = _plain_value(raw["default"])
        except ValueError as exc:
            reader.problem("default", f"default: {exc}")
    spec = FieldSpec(
        destination=reader.text("destination", "") or "",
        source=reader.text("source"),
        expression=reader.text("expression"),
        transform=reader.text("transform"),
        required=required,
        default=default,
        reference=reader.text("reference"),
    )
    return spec, reader.flagged, reader.problems


def _parse_rule(raw: Any, position: int) -> tuple[RuleSpec | None, list[MappingProblem]]:
    if not isinstance(raw, Mapping):
        reason = (
            "a validation rule is a mapping like {field: x, rule: required}, "
            f"not {_describe(raw)}"
        )
        return None, [
            MappingProblem(entity=None, field=f"validation #{position + 1}", reason=reason)
        ]
    target = raw.get("field")
    label = target if isinstance(target, str) and target else f"validation #{position + 1}"
    reader = _Reader(raw, entity=None, field=label)
    reader.unknown_keys(RULE_KEYS, "a validation rule")
    field_name = reader.text("field")
    rule = reader.text("rule")
    if not field_name:
        reader.problem(
            "field", "a validation rule needs field (a destination field of this entity)"
        )
    if not rule:
        reader.problem("rule", "a validation rule needs rule")
    params: Any = raw.get("params") or {}
    if not isinstance(params, Mapping):
        reader.problem("params", f"params must be a mapping, not {_describe(params)}")
    else:
        try:
            params = _plain_value(params)
        except ValueError as exc:
            reader.problem("params", f"params: {exc}")
    if reader.problems:
        return None, reader.problems
    return RuleSpec(field=field_name, rule=rule, params=params), []


@dataclass
class _ParsedEntity:
    spec: EntitySpec
    flagged: set[str]  # keys already reported by the parser ("name", "fields.2.destination", ...)
    problems: list[MappingProblem]


def _parse_entity(
    raw: Any, position: int, functions: Mapping[str, str]
) -> _ParsedEntity | MappingProblem | None:
    label = f"#{position + 1}"
    if not isinstance(raw, Mapping):
        return MappingProblem(
            entity=label, field=None, reason=f"an entity is a mapping, not {_describe(raw)}"
        )
    name = raw.get("name")
    entity_label = name if isinstance(name, str) and name else label
    reader = _Reader(raw, entity=entity_label, field=None)
    reader.unknown_keys(ENTITY_KEYS, "an entity")
    share = raw.get("max_delete_share", DEFAULT_MAX_DELETE_SHARE)
    if isinstance(share, bool) or not isinstance(share, int | float):
        reader.problem(
            "max_delete_share", f"max_delete_share must be a number, not {_describe(share)}"
        )
        share = DEFAULT_MAX_DELETE_SHARE
    fields: list[FieldSpec] = []
    for index, raw_field in enumerate(reader.items("fields")):
        spec, flagged, problems = _parse_field(raw_field, index)
        for problem in problems:
            problem.entity = entity_label
        reader.problems.extend(problems)
        reader.flagged.update(f"fields.{len(fields)}.{key}" for key in flagged)
        if spec is not None:
            fields.append(spec)
    rules: list[RuleSpec] = []
    for index, raw_rule in enumerate(reader.items("validation")):
        rule, problems = _parse_rule(raw_rule, index)
        for problem in problems:
            problem.entity = entity_label
        reader.problems.extend(problems)
        if rule is not None:
            rules.append(rule)
    spec = EntitySpec(
        name=reader.text("name", "") or "",
        source_table=reader.text("source_table", "") or "",
        source_key=reader.names("source_key"),
        destination_table=reader.text("destination_table", "") or "",
        destination_key=reader.text("destination_key", "id") or "",
        depends_on=reader.names("depends_on"),
        detection=reader.text("detection", "hash") or "",
        timestamp_column=reader.text("timestamp_column"),
        deletes=reader.text("deletes", "hard") or "",
        soft_delete_column=reader.text("soft_delete_column"),
        max_delete_share=float(share),
        match_on=reader.names("match_on"),
        fields=tuple(fields),
        validation=tuple(rules),
        functions=FrozenMap(functions),
    )
    return _ParsedEntity(spec, reader.flagged, reader.problems)


def _parse_connection(
    name: str, raw: Any
) -> tuple[ConnectionSpec | None, set[str], list[MappingProblem]]:
    if not isinstance(raw, Mapping):
        reason = f"connection {name!r} must be a mapping like {{url: ...}}, not {_describe(raw)}"
        return None, set(), [MappingProblem(entity=None, field=None, reason=reason)]
    reader = _Reader(raw, entity=None, field=None)
    reader.unknown_keys(CONNECTION_KEYS, f"connection {name!r}")
    url = reader.text("url", "") or ""
    timezone = reader.text("timezone", "UTC") or "UTC"
    schema = reader.text("schema")
    for problem in reader.problems:
        problem.reason = f"connection {name!r}: {problem.reason}"
    connection = ConnectionSpec(name=name, url=url, timezone=timezone, schema=schema)
    return connection, {f"connections.{name}.{key}" for key in reader.flagged}, reader.problems


def parse_mapping(data: Mapping[str, Any]) -> MappingFile:
    """Read a mapping file's data and check it (``check_structure``); all problems at once."""
    if not isinstance(data, Mapping):
        raise MappingError(
            f"a mapping file is a mapping with the keys {', '.join(TOP_KEYS)}, "
            f"not {_describe(data)}"
        )
    reader = _Reader(data, entity=None, field=None)
    reader.unknown_keys(TOP_KEYS, "the mapping file")
    version = data.get("version")
    if version is None:
        reader.problem("version", "version: 1 is required (the mapping file format)")
        version = SUPPORTED_VERSION
    elif isinstance(version, bool) or not isinstance(version, int):
        reader.problem("version", f"version must be 1, not {_describe(version)}")
        version = SUPPORTED_VERSION

    connections: dict[str, ConnectionSpec] = {}
    raw_connections = data.get("connections") or {}
    if not isinstance(raw_connections, Mapping):
        reader.problem(
            "connections", f"connections must be a mapping, not {_describe(raw_connections)}"
        )
        raw_connections = {}
    for name, raw in raw_connections.items():
        connection, flagged_keys, problems = _parse_connection(str(name), raw)
        reader.problems.extend(problems)
        reader.flagged.update(flagged_keys)
        if connection is not None:
            connections[str(name)] = connection

    functions: dict[str, str] = {}
    raw_functions = data.get("functions") or {}
    if not isinstance(raw_functions, Mapping):
        reader.problem(
            "functions",
            f"functions must be a mapping of name: expression, not {_describe(raw_functions)}",
        )
        raw_functions = {}
    for name, body in raw_functions.items():
        if not isinstance(body, str):
            reader.problem(
                None, f"function {name!r} must be an expression (text), not {_describe(body)}"
            )
        else:
            functions[str(name)] = body

    entities: list[EntitySpec] = []
    flagged: dict[int, set[str]] = {}
    for position, raw in enumerate(reader.items("entities")):
        parsed = _parse_entity(raw, position, functions)
        if isinstance(parsed, MappingProblem):
            reader.problems.append(parsed)
            continue
        flagged[len(entities)] = parsed.flagged
        reader.problems.extend(parsed.problems)
        entities.append(parsed.spec)

    mapping = MappingFile(
        version=version,
        connections=connections,
        source=reader.text("source", "") or "",
        destination=reader.text("destination", "") or "",
        functions=functions,
        entities=tuple(entities),
    )
    problems = reader.problems + _structure_problems(mapping, reader.flagged, flagged)
    if problems:
        raise MappingError(problems)
    return mapping


def entity_from_dict(data: Mapping[str, Any], *, functions: Mapping[str, str]) -> EntitySpec:
    """One entity from its stored content (``entity_to_dict``'s shape).

    Refuses only what cannot be read (unknown keys, wrong types); the value checks are
    ``check_entity``'s, so that a definition stored by an older version still loads.
    """
    parsed = _parse_entity(data, 0, functions)
    if isinstance(parsed, MappingProblem):
        raise MappingError([parsed])
    if parsed.problems:
        raise MappingError(parsed.problems)
    return parsed.spec
