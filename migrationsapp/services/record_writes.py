"""A batch's record map and record events, written inside its control commit.

On PostgreSQL both go through COPY: new record-map entries and the events straight into
their tables in the binary format (``services.control_copy``), the other entries through a
stage merged with ``INSERT … ON CONFLICT`` (``services.bulk``). Elsewhere (SQLite, the
embedded demo) the ORM's bulk writes do the same. ``services.batches.ControlRunPorts.
commit_batch`` calls these in its one transaction, after the lease check.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import TypeVar

import psycopg
from django.db import IntegrityError, connection, models, transaction

from migrationsapp.engine.outcomes import RecordAction
from migrationsapp.engine.ports import RecordOutcome
from migrationsapp.models import RecordEvent, RecordMap
from migrationsapp.services.bulk import Same, copy_available, copy_upsert
from migrationsapp.services.control_copy import copy_binary
from migrationsapp.services.key_probes import probe_ids, probe_keys

CHUNK = 1000
M = TypeVar("M", bound=models.Model)

# Column lists of the COPY paths (services.bulk); they follow the models' db columns.
MAP_COLUMNS = (
    "entity_type",
    "legacy_key",
    "legacy_key_text",
    "destination_uuid",
    "content_hash",
    "mapping_version",
    "first_session_id",
    "last_session_id",
    "first_migrated_at",
    "last_migrated_at",
)
MAP_COLUMN_TYPES = (
    "varchar(100)",
    "jsonb",
    "text",
    "uuid",
    "varchar(64)",
    "integer",
    "uuid",
    "uuid",
    "timestamptz",
    "timestamptz",
)
# A record keeps its UUID and its first migration for ever; the rest follows the last write.
MAP_UPDATES = (
    '"legacy_key" = EXCLUDED."legacy_key"',
    '"content_hash" = EXCLUDED."content_hash"',
    '"mapping_version" = EXCLUDED."mapping_version"',
    '"last_session_id" = EXCLUDED."last_session_id"',
    '"last_migrated_at" = EXCLUDED."last_migrated_at"',
    '"deleted_at" = NULL',
)
MAP_JSON = frozenset({"legacy_key"})
# The binary COPY's types: the same, without lengths.
MAP_COPY_TYPES = tuple(t.split("(")[0] for t in MAP_COLUMN_TYPES)
EVENT_COLUMNS = (
    "entity_type",
    "legacy_key_text",
    "migration_session_id",
    "action",
    "destination_uuid",
    "content_hash",
    "mapping_version",
    "reason",
    "occurred_at",
    "changes",
)
EVENT_COPY_TYPES = (
    "varchar",
    "text",
    "uuid",
    "varchar",
    "uuid",
    "varchar",
    "integer",
    "text",
    "timestamptz",
    # An update's changed fields, already JSON-safe (engine.changes).
    "jsonb",
)


@dataclass(frozen=True)
class BatchScope:
    """Whose records a batch writes: the entity, the session, the mapping version."""

    entity: str
    session_id: uuid.UUID
    mapping_version: int


def key_json(keys: list[list[object]]) -> list[str]:
    """Typed legacy keys as the JSON the record map stores. Keys of integers only, the
    common case (one column or several), are written by ``repr``, which for a list of
    ints is its JSON text, without a trip through ``json.dumps`` per record."""
    if set(map(type, chain.from_iterable(keys))) == {int}:
        return list(map(repr, keys))
    return [json.dumps(k) for k in keys]


def write_record_map(
    scope: BatchScope, outcomes: Sequence[RecordOutcome], now: dt.datetime
) -> None:
    """The record-map entries of the batch's written and deleted records."""
    created = [o for o in outcomes if o.action == RecordAction.CREATED]
    updated = [o for o in outcomes if o.action == RecordAction.UPDATED]
    deleted = [o.key_text for o in outcomes if o.action == RecordAction.DELETED]
    if copy_available():
        if created:
            _copy_new_map_entries(scope, created, now)
        if updated:
            _upsert_map_entries(scope, updated, now)
        if deleted:
            with connection.cursor() as cursor:
                table = RecordMap._meta.db_table
                picked = probe_ids(
                    table,
                    scope_column="entity_type",
                    key_column="legacy_key_text",
                    key_type="text",
                )
                cursor.execute(
                    f"UPDATE {table} SET deleted_at = %s, last_session_id = %s, "
                    f"last_migrated_at = %s WHERE {picked}",
                    [now, scope.session_id, now, probe_keys(deleted, "text"), scope.entity],
                )
        return
    written = [o for o in outcomes if o.action in (RecordAction.CREATED, RecordAction.UPDATED)]
    if written:
        RecordMap.objects.bulk_create(
            _as_models(
                RecordMap,
                MAP_COLUMNS,
                _map_columns(scope, written, now, keys=[o.key for o in written]),
                count=len(written),
            ),
            update_conflicts=True,
            unique_fields=["entity_type", "legacy_key_text"],
            update_fields=[
                "content_hash",
                "mapping_version",
                "last_session",
                "last_migrated_at",
                "deleted_at",
                "legacy_key",
            ],
            batch_size=CHUNK,
        )
    for start in range(0, len(deleted), CHUNK):
        RecordMap.objects.filter(
            entity_type=scope.entity, legacy_key_text__in=deleted[start : start + CHUNK]
        ).update(deleted_at=now, last_session_id=scope.session_id, last_migrated_at=now)


def _map_columns(
    scope: BatchScope, outcomes: list[RecordOutcome], now: dt.datetime, *, keys: list
) -> list:
    """The record map's columns (``MAP_COLUMNS``) for these outcomes, a column at a time:
    what COPY writes and what the ORM's path makes its rows of. ``keys`` are the typed legacy
    keys as the path takes them (JSON text for COPY, lists for the ORM)."""
    return [
        Same(scope.entity),
        keys,
        [o.key_text for o in outcomes],
        [o.uuid for o in outcomes],
        [o.content_hash for o in outcomes],
        Same(scope.mapping_version),
        Same(scope.session_id),
        Same(scope.session_id),
        Same(now),
        Same(now),
    ]


def _event_columns(scope: BatchScope, outcomes: Sequence[RecordOutcome], now: dt.datetime) -> list:
    """The record events' columns (``EVENT_COLUMNS``) for these outcomes, a column at a time."""
    return [
        Same(scope.entity),
        [o.key_text for o in outcomes],
        Same(scope.session_id),
        [str(o.action) for o in outcomes],
        [o.uuid for o in outcomes],
        [o.content_hash for o in outcomes],
        Same(scope.mapping_version),
        [o.reason for o in outcomes],
        Same(now),
        [o.changes for o in outcomes],
    ]


def _as_models(model: type[M], columns: Sequence[str], values: list, *, count: int) -> list[M]:
    """``count`` unsaved ``model`` rows of ``values`` (a sequence or a ``Same`` per column of
    ``columns``, the table's column names): the ORM's path writes the rows COPY writes."""
    names = {field.column: field.attname for field in model._meta.concrete_fields}
    attnames = [names[column] for column in columns]
    spread = [repeat(v.value, count) if isinstance(v, Same) else v for v in values]
    return [model(**dict(zip(attnames, row, strict=True))) for row in zip(*spread, strict=True)]


def _copy_new_map_entries(
    scope: BatchScope, created: list[RecordOutcome], now: dt.datetime
) -> None:
    """Records written for the first time: COPY straight into the map, no stage and no
    conflict check per row. "Created" means the map had no entry when the batch looked
    (and the unit's lease keeps other writers of the entity away); should one be there
    all the same, the savepoint takes the COPY back and the entries are merged instead."""
    columns = _map_columns(scope, created, now, keys=key_json([o.key for o in created]))
    try:
        with transaction.atomic():
            copy_binary(
                RecordMap._meta.db_table, MAP_COLUMNS, MAP_COPY_TYPES, columns, count=len(created)
            )
    except (IntegrityError, psycopg.errors.UniqueViolation):
        _upsert_map_entries(scope, created, now)


def _upsert_map_entries(scope: BatchScope, outcomes: list[RecordOutcome], now: dt.datetime) -> None:
    copy_upsert(
        RecordMap._meta.db_table,
        MAP_COLUMNS,
        MAP_COLUMN_TYPES,
        _map_columns(scope, outcomes, now, keys=key_json([o.key for o in outcomes])),
        count=len(outcomes),
        conflict=("entity_type", "legacy_key_text"),
        assignments=MAP_UPDATES,
        json_columns=MAP_JSON,
    )


def write_events(scope: BatchScope, outcomes: Sequence[RecordOutcome], now: dt.datetime) -> None:
    """One record event per outcome: its action, reason and changed fields."""
    columns = _event_columns(scope, outcomes, now)
    if copy_available():
        copy_binary(
            RecordEvent._meta.db_table,
            EVENT_COLUMNS,
            EVENT_COPY_TYPES,
            columns,
            count=len(outcomes),
        )
        return
    RecordEvent.objects.bulk_create(
        _as_models(RecordEvent, EVENT_COLUMNS, columns, count=len(outcomes)), batch_size=CHUNK
    )
