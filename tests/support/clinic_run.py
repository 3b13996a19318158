"""Helpers for clinic tests: read the destination back the way the tests expect it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from migrationsapp.demo.clinic import DESTINATION_TABLES, ENTITIES
from migrationsapp.models import RecordMap
from migrationsapp.models.analysis import AnalysisChange
from migrationsapp.models.choices import ChangeKind

# The destination columns that hold a parent's UUID, and the parent entity.
REFERENCES = {
    "doctor": {"office_id": "office"},
    "patient": {"doctor_id": "doctor"},
    "appointment": {"patient_id": "patient", "doctor_id": "doctor"},
}


def record_map(*, live_only: bool = True) -> dict[str, dict[str, Any]]:
    """entity → key text → destination UUID."""
    query = RecordMap.objects.all()
    if live_only:
        query = query.filter(deleted_at__isnull=True)
    out: dict[str, dict[str, Any]] = {entity: {} for entity in ENTITIES}
    for entity, key_text, uuid in query.values_list(
        "entity_type", "legacy_key_text", "destination_uuid"
    ):
        out.setdefault(entity, {})[key_text] = uuid
    return out


def destination_by_key(target_url: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The destination rows per entity keyed by legacy key text, references as parent key texts.

    A row whose UUID is not in the record map is returned under ``"?<uuid>"`` so that an
    unexpected row fails the comparison instead of vanishing.
    """
    mapped = record_map()
    by_uuid = {entity: {u: k for k, u in keys.items()} for entity, keys in mapped.items()}
    engine = sa.create_engine(target_url.replace("postgresql://", "postgresql+psycopg://", 1))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        with engine.connect() as conn:
            for entity in ENTITIES:
                table = sa.Table(DESTINATION_TABLES[entity], sa.MetaData(), autoload_with=conn)
                rows: dict[str, dict[str, Any]] = {}
                for row in conn.execute(sa.select(table)).mappings():
                    values = dict(row)
                    uuid = values.pop("id")
                    for column, parent in REFERENCES.get(entity, {}).items():
                        if values.get(column) is not None:
                            values[column] = by_uuid[parent].get(
                                values[column], f"?{values[column]}"
                            )
                    rows[by_uuid[entity].get(uuid, f"?{uuid}")] = values
                out[entity] = rows
    finally:
        engine.dispose()
    return out


def change_set(analysis_id) -> dict[str, set[str]]:
    """The keys of an analysis's change set by kind."""
    out: dict[str, set[str]] = {kind: set() for kind in ChangeKind.values}
    for kind, key_text in AnalysisChange.objects.filter(analysis_id=analysis_id).values_list(
        "kind", "legacy_key_text"
    ):
        out[kind].add(key_text)
    return out
