"""The mapping file (CONTRACT.md §2): its spec objects, parsing, dumping and checks.

One YAML file describes connections, named functions and entities. This module turns it
into frozen spec objects (``MappingFile`` → ``EntitySpec`` → ``FieldSpec``), dumps them back
in the same shape (load → dump → load is the identity, so import → export → import
creates nothing new), and refuses a bad mapping with *every* problem found at once, each
naming the entity, the field and the reason.

Checks come in two layers:

* ``check_structure`` / ``check_entity``: everything that needs no database (names,
  enumerations, references, dependency cycles, expressions compile, connection URLs);
* ``check_against_tables``: what needs the introspected tables (columns exist, types fit,
  every NOT NULL column without a default is filled).

The row transformer built from a spec lives in ``compile.py``. No Django here.
"""

from __future__ import annotations

import ast
import copy
import datetime as dt
import enum
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from migrationsapp.engine.connectors import ConnectionSpec, TableInfo, placeholder_names
from migrationsapp.engine.errors import ExpressionError, MappingError, MappingProblem
from migrationsapp.engine.transforms import (
    Expression,
    FunctionLibrary,
    compile_expression,
    compile_functions,
    compile_transform,
)
from migrationsapp.engine.validation import RuleSpec, compile_rules

SUPPORTED_VERSION = 1
DETECTIONS = ("hash", "timestamp", "hybrid")
DELETE_POLICIES = ("hard", "soft", "report")
DEFAULT_MAX_DELETE_SHARE = 0.05
SELF_REFERENCE = "self"
UUID_KIND = "uuid"
PLACEHOLDER_PREFIX = "DIFFMIG_"
# Driver options that make the database client read local files or run a statement on
# connect: a mapping editor must not reach the server's file system through them.
FORBIDDEN_URL_OPTIONS = ("local_infile", "read_default_file", "read_default_group", "init_command")

ENTITY_NAME = re.compile(r"[a-z0-9_]+\Z")

# Allowed keys, in the order the file writes them (CONTRACT.md §2's example).
TOP_KEYS = ("version", "connections", "source", "destination", "functions", "entities")
CONNECTION_KEYS = ("url", "timezone", "schema")
ENTITY_KEYS = (
    "name",
    "source_table",
    "source_key",
    "destination_table",
    "destination_key",
    "depends_on",
    "detection",
    "timestamp_column",
    "deletes",
    "soft_delete_column",
    "max_delete_share",
    "match_on",
    "fields",
    "validation",
)
FIELD_KEYS = (
    "source",
    "destination",
    "expression",
    "required",
    "default",
    "reference",
    "transform",
)
RULE_KEYS = ("field", "rule", "params")


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


# "No default given", distinct from ``default: null``. An enum member, so it survives
# pickling and deepcopy as the same object.
MISSING = _Missing.MISSING


class FrozenMap(Mapping[str, str]):
    """A read-only, hashable, picklable mapping (a ``MappingProxyType`` cannot be pickled)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (self._data,))


@dataclass(frozen=True)
class FieldSpec:
    """One destination field: where its value comes from and how it is shaped."""

    destination: str
    source: str | None = None
    expression: str | None = None
    transform: str | None = None
    required: bool = False
    default: Any = MISSING
    reference: str | None = None

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING


@dataclass(frozen=True)
class EntitySpec:
    """One entity of the mapping file, with the named functions it may use."""

    name: str
    source_table: str
    source_key: tuple[str, ...]
    destination_table: str
    destination_key: str = "id"
    depends_on: tuple[str, ...] = ()
    detection: str = "hash"
    timestamp_column: str | None = None
    deletes: str = "hard"
    soft_delete_column: str | None = None
    max_delete_share: float = DEFAULT_MAX_DELETE_SHARE
    match_on: tuple[str, ...] = ()
    fields: tuple[FieldSpec, ...] = ()
    validation: tuple[RuleSpec, ...] = ()
    functions: Mapping[str, str] = dataclass_field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        # Hand-built specs may pass lists and dicts; store the frozen forms so that equality
        # (and "unchanged content → no new version") does not depend on the container type.
        for name in ("source_key", "depends_on", "match_on", "fields", "validation"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if not isinstance(self.functions, FrozenMap):
            object.__setattr__(self, "functions", FrozenMap(self.functions))


@dataclass(frozen=True)
class MappingFile:
    """A whole mapping file."""

    version: int
    connections: dict[str, ConnectionSpec]
    source: str
    destination: str
    functions: dict[str, str]
    entities: tuple[EntitySpec, ...]

    def entity(self, name: str) -> EntitySpec | None:
        return next((e for e in self.entities if e.name == name), None)


# --------------------------------------------------------------------------- parsing


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


class _SafeLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that also refuses duplicate keys and aliases.

    PyYAML silently keeps the last of two equal keys (a typo would then drop a setting
    without a word), and aliases let a small file expand into a huge one.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not supported in a mapping file", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def load_mapping_yaml(text: str) -> MappingFile:
    """Parse and check a mapping file's YAML text; a syntax error names its line."""
    try:
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise MappingError(f"YAML syntax error{where}: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise MappingError(f"YAML syntax error: {exc}") from exc
    if data is None:
        raise MappingError("the mapping file is empty")
    return parse_mapping(data)


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


# --------------------------------------------------------------------------- dumping


def _field_to_dict(field: FieldSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if field.source is not None:
        out["source"] = field.source
    out["destination"] = field.destination
    if field.expression is not None:
        out["expression"] = field.expression
    if field.required:
        out["required"] = True
    if field.has_default:
        out["default"] = copy.deepcopy(field.default)
    if field.reference is not None:
        out["reference"] = field.reference
    if field.transform is not None:
        out["transform"] = field.transform
    return out


def _rule_to_dict(rule: RuleSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"field": rule.field, "rule": rule.rule}
    if rule.params:
        out["params"] = copy.deepcopy(dict(rule.params))
    return out


def entity_to_dict(entity: EntitySpec) -> dict[str, Any]:
    """One entity's content in the file's shape, settings at their defaults left out.

    ``destination_key`` is always written: it names the column diffmig owns, and a reader
    should not have to know the default to find it.
    """
    out: dict[str, Any] = {
        "name": entity.name,
        "source_table": entity.source_table,
        "source_key": list(entity.source_key),
        "destination_table": entity.destination_table,
        "destination_key": entity.destination_key,
    }
    if entity.depends_on:
        out["depends_on"] = list(entity.depends_on)
    if entity.detection != "hash":
        out["detection"] = entity.detection
    if entity.timestamp_column is not None:
        out["timestamp_column"] = entity.timestamp_column
    if entity.deletes != "hard":
        out["deletes"] = entity.deletes
    if entity.soft_delete_column is not None:
        out["soft_delete_column"] = entity.soft_delete_column
    if entity.max_delete_share != DEFAULT_MAX_DELETE_SHARE:
        out["max_delete_share"] = entity.max_delete_share
    if entity.match_on:
        out["match_on"] = list(entity.match_on)
    out["fields"] = [_field_to_dict(f) for f in entity.fields]
    if entity.validation:
        out["validation"] = [_rule_to_dict(r) for r in entity.validation]
    return out


def dump_mapping(mapping: MappingFile) -> dict[str, Any]:
    """The mapping as the file's data (``parse_mapping(dump_mapping(m)) == m``)."""
    connections: dict[str, Any] = {}
    for name, connection in mapping.connections.items():
        item: dict[str, Any] = {"url": connection.url}
        if connection.timezone != "UTC":
            item["timezone"] = connection.timezone
        if connection.schema is not None:
            item["schema"] = connection.schema
        connections[name] = item
    out: dict[str, Any] = {
        "version": mapping.version,
        "connections": connections,
        "source": mapping.source,
        "destination": mapping.destination,
    }
    if mapping.functions:
        out["functions"] = dict(mapping.functions)
    out["entities"] = [entity_to_dict(e) for e in mapping.entities]
    return out


class _Flow(dict):
    """A mapping written on one line, like the example's fields and rules."""


class _FlowList(list):
    """A list of names written on one line (``source_key: [id]``)."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # never write anchors: the loader refuses aliases

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)  # indent list items under their key


_STR_TAG = "tag:yaml.org,2002:str"


def _represent_text(dumper: _Dumper, data: str) -> yaml.ScalarNode:
    # Text that cannot stay plain is double-quoted, like the example's URLs: expressions
    # often hold 'quoted' text, which YAML's single quotes would write ''doubled''.
    plain = bool(data) and dumper.resolve(yaml.ScalarNode, data, (True, False)) == _STR_TAG
    if plain:
        analysis = dumper.analyze_scalar(data)
        plain = analysis.allow_flow_plain and analysis.allow_block_plain and not analysis.multiline
    return dumper.represent_scalar(_STR_TAG, data, style=None if plain else '"')


_Dumper.add_representer(str, _represent_text)
_Dumper.add_representer(
    _Flow,
    lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True),
)
_Dumper.add_representer(
    _FlowList,
    lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True),
)


def mapping_to_yaml(mapping: MappingFile) -> str:
    """Deterministic YAML text: block style, each connection, field and rule on one line."""
    data = dump_mapping(mapping)
    data["connections"] = {name: _Flow(item) for name, item in data["connections"].items()}
    for entity in data["entities"]:
        for key in ("source_key", "depends_on", "match_on"):
            if key in entity:
                entity[key] = _FlowList(entity[key])
        entity["fields"] = [_Flow(f) for f in entity["fields"]]
        if "validation" in entity:
            entity["validation"] = [_Flow(r) for r in entity["validation"]]
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=10**6,
    )


# --------------------------------------------------------------------------- content


def _names_in(text: str | None) -> set[str]:
    """Every identifier an expression text mentions (variables and called functions)."""
    if not text:
        return set()
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def used_functions(entity: EntitySpec) -> dict[str, str]:
    """The named functions the entity's expressions and transforms use, transitively, sorted."""
    pending: set[str] = set()
    for field in entity.fields:
        pending |= _names_in(field.expression) | _names_in(field.transform)
    used: dict[str, str] = {}
    while pending:
        name = pending.pop()
        if name in used or name not in entity.functions:
            continue
        used[name] = entity.functions[name]
        pending |= _names_in(used[name])
    return dict(sorted(used.items()))


def content_fingerprint(entity: EntitySpec) -> str:
    """sha256 of the entity's content and the functions it uses (not the unused ones)."""
    document = {"entity": entity_to_dict(entity), "functions": used_functions(entity)}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- dependencies


def _order(entities: Sequence[EntitySpec]) -> tuple[list[str], list[str] | None]:
    """(topological order, a cycle or None). Unknown names in depends_on are ignored."""
    names = [e.name for e in entities]
    known = set(names)
    deps = {e.name: [d for d in e.depends_on if d in known] for e in entities}
    placed: list[str] = []
    done: set[str] = set()
    remaining = list(dict.fromkeys(names))
    while remaining:
        # The first entity in file order whose parents are all placed: stable among equals.
        ready = next((n for n in remaining if all(d in done for d in deps[n])), None)
        if ready is None:
            return placed, _find_cycle(remaining, deps, done)
        placed.append(ready)
        done.add(ready)
        remaining.remove(ready)
    return placed, None


def _find_cycle(remaining: list[str], deps: Mapping[str, list[str]], done: set[str]) -> list[str]:
    # Every remaining entity waits on another remaining one, so walking the first unplaced
    # parent from anywhere must come back to a node already seen.
    path: list[str] = []
    node = remaining[0]
    while node not in path:
        path.append(node)
        node = next(d for d in deps[node] if d not in done)
    return [*path[path.index(node) :], node]


def dependency_order(entities: Sequence[EntitySpec]) -> list[str]:
    """Entity names, parents before children, file order among equals; a cycle is refused."""
    order, cycle = _order(entities)
    if cycle is not None:
        raise MappingError([_cycle_problem(cycle)])
    return order


def _cycle_problem(cycle: list[str]) -> MappingProblem:
    return MappingProblem(
        entity=cycle[0], field=None, reason=f"depends_on has a cycle: {' -> '.join(cycle)}"
    )


# --------------------------------------------------------------------------- structural checks


def _compile_library(functions: Mapping[str, str]) -> tuple[FunctionLibrary, list[MappingProblem]]:
    """The function library, and a problem per function that does not compile.

    The library returned holds the functions that do compile, so that the entities'
    expressions are still checked (and their own problems reported) in the same pass.
    """
    try:
        return compile_functions(dict(functions)), []
    except ExpressionError:
        pass
    # Named functions may call each other: grow the set of good ones until it stops
    # growing; what is left fails on its own (or calls one that does).
    good: dict[str, str] = {}
    left = dict(functions)
    progress = True
    while left and progress:
        progress = False
        for name, body in list(left.items()):
            try:
                compile_functions({**good, name: body})
            except ExpressionError:
                continue
            good[name] = left.pop(name)
            progress = True
    problems = []
    for name, body in left.items():
        try:
            compile_functions({**good, name: body})
        except ExpressionError as exc:
            problems.append(MappingProblem(entity=None, field=None, reason=str(exc)))
    library = compile_functions(good)
    return library, problems


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
            errors.append(("transform", str(exc)))
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
    try:
        options = parse_qsl(urlsplit(connection.url).query, keep_blank_values=True)
    except ValueError as exc:
        add(f"url does not parse ({exc})")
        options = []
    for option, _ in options:
        if option.strip().lower() in FORBIDDEN_URL_OPTIONS:
            add(
                f"driver option {option.strip()!r} is refused "
                "(it makes the driver read local files or run a statement)"
            )
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


# --------------------------------------------------------------------------- table checks


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
