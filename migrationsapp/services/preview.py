"""`diffmig mappings preview`: a few source rows next to what the mapping makes of them.

``preview_entity`` reads the first N source rows by key, transforms and converts each as a
run would (same compiled entity, same rules, ``today`` fixed once per preview), and says for
each row whether it would pass or which rule refuses it. It writes nothing anywhere. It
takes the active mapping of an entity, or a given ``SchemaMappingDefinition`` (a draft not
yet active), so that the web mapping editor can show the effect of an edit before
activating it.

References are shown as the parent's legacy key with its destination UUID from the record
map, or "not migrated yet". A missing parent fails the row (rule ``reference``, as in a run)
only once the parent entity has been migrated at all: a run migrates parents first, so
before the first run every child would otherwise look refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from migrationsapp.engine.compile import CompiledEntity, ReferenceValue, compile_entity
from migrationsapp.engine.connectors import Database
from migrationsapp.engine.errors import ConfigurationError, RowError
from migrationsapp.engine.ids import destination_uuid
from migrationsapp.engine.load import TableWriter
from migrationsapp.engine.mapping import EntitySpec
from migrationsapp.engine.validation import (
    CompiledRule,
    batch_unique_violations,
    compile_rules,
    unique_rules,
    validate_row,
)
from migrationsapp.engine.values import describe_reference, json_value
from migrationsapp.engine.verify import read_first_rows
from migrationsapp.models import RecordMap, SchemaMappingDefinition
from migrationsapp.selectors.definitions import definition_to_entity
from migrationsapp.services.analysis import unindexed_reference_notes
from migrationsapp.services.databases import open_named
from migrationsapp.services.mappings import load_active_mapping
from migrationsapp.services.verify import ControlVerifyPorts

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000


@dataclass(frozen=True)
class PreviewReference:
    """A reference field's value: the parent's legacy key and, once migrated, its UUID."""

    entity: str
    key: str
    uuid: uuid.UUID | None

    def __str__(self) -> str:
        return describe_reference(self.entity, self.key, self.uuid)


@dataclass(frozen=True)
class PreviewError:
    """Why a run would refuse the row: the rule, the destination field and the reason."""

    rule: str
    field: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "field": self.field, "reason": self.reason}


@dataclass(frozen=True)
class PreviewRow:
    """One source row and what it becomes.

    ``destination`` is empty when a transform or conversion failed (``error`` says where).
    """

    key: str
    source: dict[str, Any]
    destination: dict[str, Any]
    error: PreviewError | None

    @property
    def passes(self) -> bool:
        return self.error is None

    @property
    def source_shown(self) -> dict[str, Any]:
        """The source values as text the way they are read (ISO dates, exact decimals), so
        that a page shows them unlocalised."""
        return {k: json_value(v) for k, v in self.source.items()}

    @property
    def destination_shown(self) -> dict[str, Any]:
        """The values as they will be written (ISO dates, UTC times), not localised."""
        return {k: _shown(v) for k, v in self.destination.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "source": self.source_shown,
            "destination": self.destination_shown,
            "error": self.error.as_dict() if self.error else None,
        }


@dataclass(frozen=True)
class PreviewResult:
    entity: str
    mapping_version: int
    source_table: str
    destination_table: str
    rows: list[PreviewRow]
    # Destination foreign keys that would make this entity's deletes slow (one line each;
    # services.analysis.unindexed_reference_notes).
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The ``mappings preview --json`` document."""
        return {
            "entity": self.entity,
            "mapping_version": self.mapping_version,
            "rows": [row.as_dict() for row in self.rows],
        }


def _shown(value: Any) -> Any:
    return str(value) if isinstance(value, PreviewReference) else json_value(value)


def preview_entity(
    *,
    entity: str,
    limit: int = DEFAULT_LIMIT,
    definition: SchemaMappingDefinition | None = None,
) -> PreviewResult:
    """The first ``limit`` source rows of ``entity`` by key, transformed and validated.

    With ``definition``, that (possibly inactive) version is previewed instead of the
    active one. Raises ConfigurationError for an unknown entity or a bad limit, and
    MappingError when the mapping does not compile against the tables.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ConfigurationError(f"--limit must be between 1 and {MAX_LIMIT}, not {limit}")
    if definition is not None:
        if definition.entity_type != entity:
            raise ConfigurationError(
                f"definition {definition} is for entity {definition.entity_type!r}, not {entity!r}"
            )
        spec = definition_to_entity(definition)
        version = definition.version
        source_name, destination_name = (
            definition.source_connection,
            definition.destination_connection,
        )
    else:
        active = load_active_mapping(entities=[entity])
        spec = active.entity(entity)
        version = active.versions[entity]
        source_name, destination_name = active.mapping.source, active.mapping.destination

    source = open_named(source_name)
    destination = open_named(destination_name)
    try:
        return _preview(spec, version, limit, source, destination)
    finally:
        source.close()
        destination.close()


def _preview(
    spec: EntitySpec, version: int, limit: int, source: Database, destination: Database
) -> PreviewResult:
    compiled = compile_entity(
        spec,
        source.require_table(spec.source_table),
        destination.require_table(spec.destination_table),
        timezone=source.timezone,
    )
    rules = compile_rules(spec.name, list(spec.validation), [f.destination for f in spec.fields])
    today = timezone.localdate()  # one "today" for every row, as in a run
    rows = read_first_rows(
        source, spec.source_table, spec.source_key, compiled.source_columns, limit
    )

    transformed: dict[str, dict[str, Any]] = {}
    errors: dict[str, PreviewError] = {}
    for key, row in rows:
        try:
            values = compiled.transform(row)
        except RowError as error:
            errors[key] = _error(error)
            continue
        transformed[key] = values
        error = validate_row(rules, values, today=today)
        if error is not None:
            errors[key] = _error(error)

    _show_references(compiled, transformed, errors)
    _check_unique(spec, rules, destination, transformed, errors)
    return PreviewResult(
        entity=spec.name,
        mapping_version=version,
        source_table=spec.source_table,
        destination_table=spec.destination_table,
        notes=unindexed_reference_notes(destination=destination, entity=spec),
        rows=[
            PreviewRow(
                key=key,
                source={c: row.get(c) for c in compiled.source_columns},
                destination=transformed.get(key, {}),
                error=errors.get(key),
            )
            for key, row in rows
        ],
    )


def _error(error: RowError) -> PreviewError:
    return PreviewError(rule=error.rule, field=error.field, reason=error.reason)


def _show_references(
    compiled: CompiledEntity,
    transformed: dict[str, dict[str, Any]],
    errors: dict[str, PreviewError],
) -> None:
    """Replace each ReferenceValue by a PreviewReference carrying the parent's UUID.

    A parent that is not in the record map fails the row (as in a run) only once its entity
    has been migrated at all; before that, it is merely "not migrated yet".
    """
    if not compiled.reference_fields:
        return
    wanted: dict[str, set[str]] = {}
    for values in transformed.values():
        for column in compiled.reference_fields:
            ref = values.get(column)
            if isinstance(ref, ReferenceValue):
                wanted.setdefault(ref.entity, set()).add(ref.key_text)
    ports = ControlVerifyPorts()
    resolved = {
        parent: {k: e.uuid for k, e in ports.entries_by_key(parent, keys).items() if not e.deleted}
        for parent, keys in wanted.items()
    }
    migrated = {
        parent
        for parent in wanted
        if parent != compiled.spec.name  # a self-reference may point into the same batch
        and RecordMap.objects.filter(entity_type=parent, deleted_at__isnull=True).exists()
    }
    for key, values in transformed.items():
        for column in compiled.reference_fields:
            ref = values.get(column)
            if not isinstance(ref, ReferenceValue):
                continue
            parent_uuid = resolved.get(ref.entity, {}).get(ref.key_text)
            values[column] = PreviewReference(ref.entity, ref.key_text, parent_uuid)
            if parent_uuid is None and ref.entity in migrated and key not in errors:
                errors[key] = PreviewError(
                    rule="reference",
                    field=column,
                    reason=f"missing parent: {ref.entity} {ref.key_text!r} has not been migrated",
                )


def _check_unique(
    spec: EntitySpec,
    rules: list[CompiledRule],
    destination: Database,
    transformed: dict[str, dict[str, Any]],
    errors: dict[str, PreviewError],
) -> None:
    """`unique` as a run checks it: within the previewed rows, then against the destination."""
    unique = unique_rules(rules)
    passing = [(k, v) for k, v in transformed.items() if k not in errors]
    if not unique or not passing:
        return
    for key, error in batch_unique_violations(unique, passing).items():
        errors[key] = _error(error)
    passing = [(k, v) for k, v in passing if k not in errors]
    writer = TableWriter(
        destination, destination.require_table(spec.destination_table), spec.destination_key
    )
    own = ControlVerifyPorts().entries_by_key(spec.name, [k for k, _ in passing])
    for rule in unique:
        owners = writer.owners_of_values(rule.field, [v.get(rule.field) for _, v in passing])
        for key, values in passing:
            value = values.get(rule.field)
            owner = owners.get(value) if value is not None else None
            entry = own.get(key)
            record_uuid = entry.uuid if entry else destination_uuid(spec.name, key)
            if owner is not None and owner != record_uuid and key not in errors:
                errors[key] = PreviewError(
                    rule="unique",
                    field=rule.field,
                    reason=f"unique: {value!r} is already used by another destination record",
                )


__all__ = [
    "DEFAULT_LIMIT",
    "PreviewError",
    "PreviewReference",
    "PreviewResult",
    "PreviewRow",
    "preview_entity",
]
