"""`diffmig verify`: compare source and destination through the active mapping.

The comparison itself is the engine's (``engine.verify.EntityVerifier``); this module gives
it its ports on the control database (record map and quarantine, read in batches: on
PostgreSQL one index probe per key, the batch's keys sent as one array literal,
``engine.pg_arrays``), runs it per entity with rarer garbage collections (the large entities
in processes of their own when ``DIFFMIG_LOCAL_PROCESSES`` allows: ``verify_processes.py``),
and logs one ``validation`` entry per entity with the counts, in dependency order.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from contextlib import closing
from dataclasses import dataclass

from django.db import connection

from migrationsapp.engine.compile import compile_entity
from migrationsapp.engine.connectors import Database
from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.engine.gc_policy import fewer_collections
from migrationsapp.engine.verify import EntityVerifier
from migrationsapp.engine.verify_report import DEFAULT_CAP, EntityVerification, MapEntry
from migrationsapp.models import QuarantinedRecord, RecordMap
from migrationsapp.models.choices import AuditAction, LogLevel, OperationType
from migrationsapp.services import verify_processes
from migrationsapp.services.databases import open_named
from migrationsapp.services.key_probes import probe_keys, probe_select
from migrationsapp.services.logs import log_event
from migrationsapp.services.mappings import ActiveMapping, load_active_mapping

# Keys per control-database query: PostgreSQL takes a whole batch as one array parameter;
# SQLite takes an IN list, well below its limit on bound parameters.
SQLITE_CHUNK = 1000
# Records per verify batch: a batch of rows is held (source, transformed and destination),
# never a table; larger batches than a run's share the per-query costs over more rows.
VERIFY_BATCH_SIZE = 5000

# Raw SQL rather than the ORM: verify reads one entry per record and pass, and the ORM's
# per-row model machinery and an IN list of a thousand placeholders cost more than the query.
_ENTRY_COLUMNS = (
    "legacy_key_text, {key_json}, destination_uuid, mapping_version, "
    "deleted_at IS NOT NULL, content_hash"
)


def _entry(row: tuple) -> MapEntry:
    text, key_json, destination, version, deleted, content_hash = row
    if not isinstance(destination, uuid.UUID):
        destination = uuid.UUID(str(destination))  # SQLite keeps it as hex text
    return MapEntry(text, key_json, destination, version, bool(deleted), content_hash or "")


class ControlVerifyPorts:
    """The verifier's reads of the record map and the quarantine, one query per batch."""

    def __init__(self) -> None:
        self._postgresql = connection.vendor == "postgresql"
        key_json = "legacy_key::text" if self._postgresql else "legacy_key"
        self._entries = _ENTRY_COLUMNS.format(key_json=key_json)
        self._map = RecordMap._meta.db_table
        self._quarantine = QuarantinedRecord._meta.db_table

    def _select(
        self,
        table: str,
        columns: str,
        entity: str,
        column: str,
        values: list,
        *,
        where: str = "",
        unique: bool = False,
    ) -> list[tuple]:
        """``columns`` of the entity's rows of ``table`` whose ``column`` is one of
        ``values`` (and that meet ``where``, which starts with ``AND``)."""
        rows: list[tuple] = []
        with connection.cursor() as cursor:
            if self._postgresql:
                key_type = "uuid" if column == "destination_uuid" else "text"
                sql = probe_select(
                    table,
                    columns,
                    scope_column="entity_type",
                    key_column=column,
                    key_type=key_type,
                    where=where,
                    unique=unique,
                )
                # One array literal, not a list the driver dumps element by element.
                keys = probe_keys(values, key_type)
                cursor.execute(sql, [keys, entity])
                return cursor.fetchall()
            sql = f"SELECT {columns} FROM {table} WHERE entity_type = %s {where} AND {column}"
            for start in range(0, len(values), SQLITE_CHUNK):
                chunk = values[start : start + SQLITE_CHUNK]
                marks = ", ".join(["%s"] * len(chunk))
                cursor.execute(f"{sql} IN ({marks})", [entity, *chunk])
                rows += cursor.fetchall()
        return rows

    def entries_by_key(self, entity: str, key_texts: Collection[str]) -> dict[str, MapEntry]:
        if not key_texts:
            return {}
        rows = self._select(
            self._map, self._entries, entity, "legacy_key_text", list(key_texts), unique=True
        )
        if self._postgresql:
            # Each column comes back as MapEntry holds it (a UUID, a bool, a hash never NULL).
            return {row[0]: MapEntry._make(row) for row in rows}
        return {row[0]: _entry(row) for row in rows}

    def entries_by_uuid(
        self, entity: str, uuids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, MapEntry]:
        if not uuids:
            return {}
        wanted = list(uuids) if self._postgresql else [u.hex for u in uuids]
        found: dict[uuid.UUID, MapEntry] = {}
        for row in self._select(self._map, self._entries, entity, "destination_uuid", wanted):
            entry = _entry(row)
            # Should one UUID ever be mapped twice, a live entry speaks for the row.
            if entry.uuid not in found or not entry.deleted:
                found[entry.uuid] = entry
        return found

    def live_uuids(self, entity: str, key_texts: Collection[str]) -> dict[str, uuid.UUID]:
        if not key_texts:
            return {}
        rows = self._select(
            self._map,
            "legacy_key_text, destination_uuid",
            entity,
            "legacy_key_text",
            list(key_texts),
            where="AND deleted_at IS NULL",
            unique=True,
        )
        if self._postgresql:
            return dict(rows)
        return {text: uuid.UUID(str(value)) for text, value in rows}

    def quarantined(self, entity: str, key_texts: Collection[str]) -> dict[str, str]:
        if not key_texts:
            return {}
        rows = self._select(
            self._quarantine,
            "legacy_key_text, reason",
            entity,
            "legacy_key_text",
            list(key_texts),
            where="AND resolved_at IS NULL",
        )
        return dict(rows)

    def live_uuids_unique(self, entity: str) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COUNT(*) = COUNT(DISTINCT destination_uuid) FROM {self._map} "
                "WHERE entity_type = %s AND deleted_at IS NULL",
                [entity],
            )
            return bool(cursor.fetchone()[0])


@dataclass(frozen=True)
class VerifyReport:
    """Every entity's verification, in dependency order."""

    entities: list[EntityVerification]

    @property
    def equal(self) -> bool:
        return all(e.equal for e in self.entities)

    def as_dict(self) -> dict:
        """The ``verify --json`` document (docs/cli.md)."""
        return {"entities": {e.entity: e.as_dict() for e in self.entities}}


def verify_entities(
    *,
    entities: Sequence[str] | None = None,
    batch_size: int = VERIFY_BATCH_SIZE,
    cap: int = DEFAULT_CAP,
    actor: str = "",
) -> VerifyReport:
    """Verify the given entities (default: every active one) against the active mapping.

    ``actor`` is who asked (a username, or ``cli``), named in each entity's log entry.
    Raises ConfigurationError for an entity without an active mapping.
    """
    active = load_active_mapping()
    known = [spec.name for spec in active.mapping.entities]  # dependency order
    if entities:
        unknown = [name for name in dict.fromkeys(entities) if name not in known]
        if unknown:
            raise ConfigurationError(
                f"no active mapping for {', '.join(unknown)} "
                f"(active: {', '.join(known) or 'none'})",
                hint="diffmig mappings export lists the active entities.",
            )
        names = [name for name in known if name in set(entities)]
    else:
        names = known
    if not names:
        raise ConfigurationError(
            "there is no active mapping to verify",
            hint="Import one first: diffmig mappings import FILE",
        )
    # The large entities in processes of their own (verify_processes.py), when allowed;
    # the others, and any a process could not finish, here.
    results = verify_processes.verify_apart(names, batch_size=batch_size, cap=cap)
    here = [name for name in names if name not in results]
    try:
        verify_here(active, here, results, batch_size=batch_size, cap=cap)
    finally:
        # What was verified is logged, also when an entity then failed.
        for name in names:
            if name in results:
                _log(results[name], actor=actor)
    return VerifyReport(entities=[results[name] for name in names])


def verify_here(
    active: ActiveMapping,
    names: Sequence[str],
    results: dict[str, EntityVerification],
    *,
    batch_size: int = VERIFY_BATCH_SIZE,
    cap: int = DEFAULT_CAP,
) -> None:
    """Verify ``names`` in this process, on one connection to each side, adding each
    entity's verification to ``results`` as it ends (those stay when a later one fails)."""
    if not names:
        return
    with (
        closing(open_named(active.mapping.source)) as source,
        closing(open_named(active.mapping.destination)) as destination,
    ):
        for name in names:
            results[name] = _verify_entity(
                active, name, source, destination, batch_size=batch_size, cap=cap
            )


def _verify_entity(
    active: ActiveMapping,
    name: str,
    source: Database,
    destination: Database,
    *,
    batch_size: int = VERIFY_BATCH_SIZE,
    cap: int = DEFAULT_CAP,
) -> EntityVerification:
    """One entity's verification through the active mapping (nothing logged)."""
    spec = active.entity(name)
    compiled = compile_entity(
        spec,
        source.require_table(spec.source_table),
        destination.require_table(spec.destination_table),
        timezone=source.timezone,
    )
    # Rarer garbage collections while it compares (engine.gc_policy): a batch holds some
    # hundred thousand objects, which the default thresholds would walk again and again.
    with fewer_collections():
        return EntityVerifier(
            compiled=compiled,
            source=source,
            destination=destination,
            ports=ControlVerifyPorts(),
            mapping_version=active.versions[name],
            batch_size=batch_size,
            cap=cap,
        ).run()


def _log(result: EntityVerification, *, actor: str) -> None:
    counts = result.counts()
    verdict = "equal" if result.equal else "differences found"
    log_event(
        session_id=None,
        entity=result.entity,
        operation=OperationType.VALIDATION,
        action=AuditAction.VERIFY_FINISHED,
        actor=actor,
        level=LogLevel.INFO,
        message=(
            f"verify {result.entity} (mapping v{result.mapping_version}): {verdict}; "
            f"{counts['compared']} compared, {counts['missing']} missing, "
            f"{counts['extra']} extra, {counts['different']} different fields in "
            f"{counts['different_records']} records, {counts['quarantined']} quarantined "
            f"({result.quarantined_mismatches} of them missing or different in the "
            f"destination), {counts['stale']} stale"
        ),
        performance_data={"seconds": round(result.seconds, 4)},
        context={"verify": counts, "mapping_version": result.mapping_version},
    )
