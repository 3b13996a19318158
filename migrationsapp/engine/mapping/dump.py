"""Writing spec objects back in the file's shape, and the content fingerprint of an entity
(load → dump → load is the identity; unchanged content makes no new version)."""

from __future__ import annotations

import ast
import copy
import hashlib
import json
from typing import Any

import yaml

from migrationsapp.engine.validation import RuleSpec

from .spec import DEFAULT_MAX_DELETE_SHARE, EntitySpec, FieldSpec, MappingFile


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
