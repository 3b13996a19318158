"""Importing, storing, loading and exporting mapping definitions.

An import checks everything first (structure, then the tables and columns of both
databases) and stores nothing when anything is refused. Each entity whose content changed
becomes a new active version; an unchanged entity gets no new version; entities not in the
file are left as they are. A stored import writes one audit entry (``mapping.imported``)
naming each entity's new version and the one it replaced. Export writes the same shape back,
with ``${…}`` placeholders as they were imported and never a password.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from migrationsapp.engine.connectors import ConnectionSpec
from migrationsapp.engine.errors import ConfigurationError, MappingError, MappingProblem
from migrationsapp.engine.mapping import (
    MISSING,
    EntitySpec,
    MappingFile,
    check_against_tables,
    check_structure,
    content_fingerprint,
    load_mapping_yaml,
    mapping_to_yaml,
    used_functions,
)
from migrationsapp.models import (
    Connection,
    FieldMapping,
    SchemaMappingDefinition,
    TransformationFunction,
    ValidationRule,
)
from migrationsapp.selectors.definitions import active_definitions, definition_to_entity
from migrationsapp.services.change_audit import log_import
from migrationsapp.services.connections import save_connection, spec_for_import
from migrationsapp.services.databases import opened


@dataclass
class ImportResult:
    created: list[tuple[str, int]] = field(default_factory=list)  # (entity, new version)
    unchanged: list[tuple[str, int]] = field(default_factory=list)
    dry_run: bool = False


def check_mapping_file(mapping: MappingFile) -> None:
    """Every check of docs/mapping.md (importing): structure first, then the introspected tables."""
    check_structure(mapping)
    problems: list[MappingProblem] = []
    try:
        # Checked with the password the import will store (the stored one, for a file whose
        # URL names none and an unchanged target), so that an exported file imports again.
        source_spec = spec_for_import(mapping.connections[mapping.source])
        destination_spec = spec_for_import(mapping.connections[mapping.destination])
        with opened(source_spec) as source, opened(destination_spec) as destination:
            for entity in mapping.entities:
                problems += check_against_tables(
                    entity,
                    source.table(entity.source_table),
                    destination.table(entity.destination_table),
                )
    except ConfigurationError as exc:
        raise MappingError([MappingProblem(entity=None, field=None, reason=str(exc))]) from exc
    if problems:
        raise MappingError(problems)


def import_mapping_text(*, text: str, dry_run: bool = False, user: str = "") -> ImportResult:
    """Check a mapping file and store it (nothing with ``dry_run``); ``user`` is who asked,
    stored as the new versions' author and named in the audit entries."""
    mapping = load_mapping_yaml(text)
    check_mapping_file(mapping)
    result = ImportResult(dry_run=dry_run)
    if dry_run:
        for entity in mapping.entities:
            active = _active(entity.name)
            unchanged = active is not None and active.content_fingerprint == content_fingerprint(
                entity
            )
            (result.unchanged if unchanged else result.created).append(
                (
                    entity.name,
                    active.version if unchanged and active else _next_version(entity.name),
                )
            )
        return result
    with transaction.atomic():
        for name, connection in mapping.connections.items():
            save_connection(
                name=name,
                url=connection.url,
                timezone=connection.timezone,
                schema=connection.schema or "",
                actor=user,
            )
        replaced = []
        for entity in mapping.entities:
            stored = store_entity(
                entity=entity, source=mapping.source, destination=mapping.destination, user=user
            )
            target = result.created if stored.created else result.unchanged
            target.append((entity.name, stored.definition.version))
            if stored.created:
                replaced.append((entity.name, stored.definition.version, stored.replaced_version))
        log_import(
            created=replaced,
            unchanged=result.unchanged,
            connections=list(mapping.connections),
            actor=user,
        )
    return result


@dataclass
class StoredEntity:
    definition: SchemaMappingDefinition
    created: bool
    replaced_version: int | None = None  # the version active before, when one was


def store_entity(
    *, entity: EntitySpec, source: str, destination: str, user: str = ""
) -> StoredEntity:
    """Store ``entity`` as its new active version unless its content is unchanged."""
    fingerprint = content_fingerprint(entity)
    with transaction.atomic():
        # Lock the entity's definitions so two imports cannot both add "the next version".
        list(
            SchemaMappingDefinition.objects.select_for_update()
            .filter(entity_type=entity.name)
            .order_by("version")  # the same lock order as mapping_versions: no deadlock
            .values_list("pk", flat=True)
        )
        active = _active(entity.name)
        if (
            active is not None
            and active.content_fingerprint == fingerprint
            and (active.source_connection, active.destination_connection) == (source, destination)
        ):
            return StoredEntity(definition=active, created=False)
        definition = _create_definition(entity, source, destination, fingerprint, user)
        SchemaMappingDefinition.objects.filter(entity_type=entity.name, is_active=True).update(
            is_active=False
        )
        definition.is_active = True
        definition.activated_at = timezone.now()
        definition.save(update_fields=["is_active", "activated_at", "updated_at"])
        return StoredEntity(
            definition=definition,
            created=True,
            replaced_version=active.version if active is not None else None,
        )


def _next_version(entity: str) -> int:
    current = SchemaMappingDefinition.objects.filter(entity_type=entity).aggregate(
        v=Max("version")
    )["v"]
    return (current or 0) + 1


def _active(entity: str) -> SchemaMappingDefinition | None:
    return SchemaMappingDefinition.objects.filter(entity_type=entity, is_active=True).first()


def _create_definition(
    entity: EntitySpec, source: str, destination: str, fingerprint: str, user: str
) -> SchemaMappingDefinition:
    definition = SchemaMappingDefinition.objects.create(
        entity_type=entity.name,
        source_connection=source,
        destination_connection=destination,
        source_table=entity.source_table,
        source_key=list(entity.source_key),
        destination_table=entity.destination_table,
        destination_key=entity.destination_key,
        depends_on=list(entity.depends_on),
        detection=entity.detection,
        timestamp_column=entity.timestamp_column or "",
        deletes=entity.deletes,
        soft_delete_column=entity.soft_delete_column or "",
        max_delete_share=entity.max_delete_share,
        match_on=list(entity.match_on),
        version=_next_version(entity.name),
        is_active=False,
        content_fingerprint=fingerprint,
        created_by=user,
    )
    FieldMapping.objects.bulk_create(
        FieldMapping(
            definition=definition,
            position=position,
            source_field=f.source or "",
            destination_field=f.destination,
            expression=f.expression or "",
            transformation=f.transform or "",
            is_required=f.required,
            has_default=f.has_default,
            default_value=f.default if f.has_default else None,
            reference=f.reference or "",
        )
        for position, f in enumerate(entity.fields)
    )
    ValidationRule.objects.bulk_create(
        ValidationRule(
            definition=definition,
            position=position,
            field_name=rule.field,
            rule_type=rule.rule,
            rule_parameters=dict(rule.params),
        )
        for position, rule in enumerate(entity.validation)
    )
    TransformationFunction.objects.bulk_create(
        TransformationFunction(definition=definition, name=name, function_body=body)
        for name, body in used_functions(entity).items()
    )
    return definition


@dataclass(frozen=True)
class ActiveMapping:
    """The active definitions as the engine sees them, in dependency order."""

    mapping: MappingFile
    versions: dict[str, int]

    def entity(self, name: str) -> EntitySpec:
        spec = self.mapping.entity(name)
        if spec is None:
            known = ", ".join(e.name for e in self.mapping.entities) or "none"
            raise ConfigurationError(
                f"entity {name!r} has no active mapping (active: {known})",
                hint="Import a mapping file that defines it (diffmig mappings import FILE).",
            )
        return spec


def load_active_mapping(
    *, with_passwords: bool = True, entities: Sequence[str] | None = None
) -> ActiveMapping:
    """The active mapping; ``with_passwords=False`` leaves connection URLs as stored."""
    from migrationsapp.services.databases import connection_spec

    definitions = active_definitions()
    if entities:
        definitions = [d for d in definitions if d.entity_type in set(entities)]
    specs = [definition_to_entity(d) for d in definitions]
    functions: dict[str, str] = {}
    for spec in specs:
        functions.update(used_functions(spec))
    names = {d.source_connection for d in definitions} | {
        d.destination_connection for d in definitions
    }
    connections: dict[str, ConnectionSpec] = {}
    for connection in Connection.objects.filter(name__in=names).order_by("name"):
        if with_passwords:
            connections[connection.name] = connection_spec(connection.name)
        else:
            connections[connection.name] = ConnectionSpec(
                name=connection.name,
                url=connection.url,
                timezone=connection.timezone or "UTC",
                schema=connection.schema or None,
            )
    first = definitions[0] if definitions else None
    mapping = MappingFile(
        version=1,
        connections=connections,
        source=first.source_connection if first else "legacy",
        destination=first.destination_connection if first else "target",
        functions=dict(sorted(functions.items())),
        entities=tuple(specs),
    )
    return ActiveMapping(mapping=mapping, versions={d.entity_type: d.version for d in definitions})


def export_mapping_text(*, entities: Sequence[str] | None = None) -> str:
    active = load_active_mapping(with_passwords=False, entities=entities)
    if entities:
        missing = sorted(set(entities) - set(active.versions))
        if missing:
            raise ConfigurationError(f"no active mapping for {', '.join(missing)}")
    return mapping_to_yaml(active.mapping)


__all__ = [
    "MISSING",
    "ActiveMapping",
    "ImportResult",
    "active_definitions",
    "definition_to_entity",
    "export_mapping_text",
    "import_mapping_text",
    "load_active_mapping",
    "store_entity",
]
