"""Helpers for clinic tests: set the legacy clinic up, read the destination back the way the
tests expect it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from migrationsapp.demo.clinic import (
    DESTINATION_TABLES,
    ENTITIES,
    MAPPING_FILE,
    ClinicData,
    create_destination_schema,
    create_legacy_schema,
    generate_clinic,
    load_legacy,
)
from migrationsapp.models import RecordMap
from migrationsapp.models.analysis import AnalysisChange
from migrationsapp.models.choices import ChangeKind
from migrationsapp.services.mappings import import_mapping_text

# The destination columns that hold a parent's UUID, and the parent entity.
REFERENCES = {
    "doctor": {"office_id": "office"},
    "patient": {"doctor_id": "doctor"},
    "appointment": {"patient_id": "patient", "doctor_id": "doctor"},
}


@dataclass
class Clinic:
    legacy: sa.Engine
    target_url: str
    data: ClinicData


@contextmanager
def clinic_in(mysql_to_pg: tuple[str, str], seed: int, scale: int = 1) -> Iterator[Clinic]:
    """The clinic for ``seed`` at ``scale`` in a scratch MariaDB, an empty PostgreSQL
    destination, the mapping imported."""
    legacy_url, target_url = mysql_to_pg
    legacy = sa.create_engine(
        sa.make_url(legacy_url).set(drivername="mysql+pymysql", query={"charset": "utf8mb4"})
    )
    target = sa.create_engine(sa.make_url(target_url).set(drivername="postgresql+psycopg"))
    data = generate_clinic(seed, scale)
    create_legacy_schema(legacy)
    load_legacy(legacy, data)
    create_destination_schema(target)
    target.dispose()
    import_mapping_text(text=MAPPING_FILE.read_text(encoding="utf-8"))
    try:
        yield Clinic(legacy=legacy, target_url=target_url, data=data)
    finally:
        legacy.dispose()


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
