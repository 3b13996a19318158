"""`diffmig mappings preview`: a few source rows next to what the mapping makes of them.

``preview_entity`` reads the first N source rows by key and puts them through a run's row
pipeline (``engine.row_pipeline``: same compiled entity, same rules and messages, ``today``
fixed once per preview), and says for each row whether it would pass or which rule refuses
it. It writes nothing anywhere. It takes the active mapping of an entity, or a given
``SchemaMappingDefinition`` (a draft not yet active), so that the web mapping editor can
show the effect of an edit before activating it.

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
from migrationsapp.engine.row_pipeline import PipelineRow, References, RowPipeline
from migrationsapp.engine.validation import compile_rules
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
    rows = read_first_rows(
        source, spec.source_table, spec.source_key, compiled.source_columns, limit
    )
    checked = _check_rows(spec, compiled, destination, rows)
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
                destination=result.values,
                error=_error(result.error) if result.error is not None else None,
            )
            for (key, row), result in zip(rows, checked, strict=True)
        ],
    )


def _check_rows(
    spec: EntitySpec,
    compiled: CompiledEntity,
    destination: Database,
    rows: list[tuple[str, dict[str, Any]]],
) -> list[PipelineRow]:
    """The rows through a run's row pipeline (``engine.row_pipeline``), writing nothing.

    Each row is checked under the UUID a run would write it under (its record map entry's,
    else the deterministic one), so that its own destination row is no `unique` clash.
    """
    rules = compile_rules(spec.name, list(spec.validation), [f.destination for f in spec.fields])
    ports = ControlVerifyPorts()
    own = ports.entries_by_key(spec.name, [key for key, _ in rows])
    pipeline = RowPipeline(
        compiled,
        rules,
        timezone.localdate(),  # one "today" for every row, as in a run
        references=References.for_preview(spec.name, ports.live_uuids, _migrated, _shown_reference),
        owners=TableWriter(
            destination, destination.require_table(spec.destination_table), spec.destination_key
        ),
    )
    return pipeline.run(
        [
            (key, own[key].uuid if key in own else destination_uuid(spec.name, key), row)
            for key, row in rows
        ]
    )


def _migrated(entity: str) -> bool:
    """Whether any record of ``entity`` has been migrated (a live record map entry)."""
    return RecordMap.objects.filter(entity_type=entity, deleted_at__isnull=True).exists()


def _shown_reference(ref: ReferenceValue, parent_uuid: uuid.UUID | None) -> PreviewReference:
    return PreviewReference(ref.entity, ref.key_text, parent_uuid)


def _error(error: RowError) -> PreviewError:
    return PreviewError(rule=error.rule, field=error.field, reason=error.reason)


__all__ = [
    "DEFAULT_LIMIT",
    "PreviewError",
    "PreviewReference",
    "PreviewResult",
    "PreviewRow",
    "preview_entity",
]
