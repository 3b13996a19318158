"""Stored mapping definitions as the engine sees them: reads shared by pages and services.

``definition_to_entity`` turns a stored definition (and its rows) into the engine's
``EntitySpec``; ``active_definitions`` lists the active ones in dependency order.
"""

from __future__ import annotations

from migrationsapp.engine.mapping import EntitySpec, dependency_order, entity_from_dict
from migrationsapp.models import SchemaMappingDefinition


def definition_to_entity(definition: SchemaMappingDefinition) -> EntitySpec:
    """The engine's view of a stored definition."""
    fields = []
    for row in definition.field_mappings.all():
        item: dict = {"destination": row.destination_field}
        if row.source_field:
            item["source"] = row.source_field
        if row.expression:
            item["expression"] = row.expression
        if row.transformation:
            item["transform"] = row.transformation
        if row.is_required:
            item["required"] = True
        if row.has_default:
            item["default"] = row.default_value
        if row.reference:
            item["reference"] = row.reference
        fields.append(item)
    data: dict = {
        "name": definition.entity_type,
        "source_table": definition.source_table,
        "source_key": list(definition.source_key),
        "destination_table": definition.destination_table,
        "destination_key": definition.destination_key,
        "depends_on": list(definition.depends_on),
        "detection": definition.detection,
        "deletes": definition.deletes,
        "max_delete_share": definition.max_delete_share,
        "fields": fields,
        "validation": [
            {
                "field": r.field_name,
                "rule": r.rule_type,
                **({"params": r.rule_parameters} if r.rule_parameters else {}),
            }
            for r in definition.validation_rules.all()
        ],
    }
    if definition.timestamp_column:
        data["timestamp_column"] = definition.timestamp_column
    if definition.soft_delete_column:
        data["soft_delete_column"] = definition.soft_delete_column
    if definition.match_on:
        data["match_on"] = list(definition.match_on)
    functions = {f.name: f.function_body for f in definition.transformation_functions.all()}
    return entity_from_dict(data, functions=functions)


def active_definitions() -> list[SchemaMappingDefinition]:
    definitions = list(
        SchemaMappingDefinition.objects.filter(is_active=True).prefetch_related(
            "field_mappings", "validation_rules", "transformation_functions"
        )
    )
    order = {
        name: i
        for i, name in enumerate(dependency_order([definition_to_entity(d) for d in definitions]))
    }
    return sorted(definitions, key=lambda d: order.get(d.entity_type, len(order)))
