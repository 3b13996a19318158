"""`diffmig verify`: compare source and destination through the active mapping.

The comparison itself is the engine's (``engine.verify.EntityVerifier``); this module gives
it its ports on the control database (record map and quarantine, read in batches), runs it
per entity in dependency order, and logs one ``validation`` entry per entity with the counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from migrationsapp.engine.compile import compile_entity
from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.engine.ports import DEFAULT_BATCH_SIZE
from migrationsapp.engine.verify import EntityVerifier
from migrationsapp.engine.verify_report import DEFAULT_CAP, EntityVerification, MapEntry
from migrationsapp.models import QuarantinedRecord, RecordMap
from migrationsapp.models.choices import AuditAction, LogLevel, OperationType
from migrationsapp.services.databases import open_named
from migrationsapp.services.logs import log_event
from migrationsapp.services.mappings import load_active_mapping

CHUNK = 1000  # keys per control-database query

_ENTRY_FIELDS = (
    "legacy_key_text",
    "legacy_key",
    "destination_uuid",
    "mapping_version",
    "deleted_at",
    "content_hash",
)


def _entry(
    text: str, key: list, destination: uuid.UUID, version: int, deleted, content_hash: str
) -> MapEntry:
    return MapEntry(
        key_text=text,
        key=list(key),
        uuid=destination,
        mapping_version=version,
        deleted=deleted is not None,
        content_hash=content_hash or "",
    )


class ControlVerifyPorts:
    """The verifier's reads of the record map and the quarantine, a chunk at a time."""

    def entries_by_key(self, entity: str, key_texts: Collection[str]) -> dict[str, MapEntry]:
        texts = list(key_texts)
        found: dict[str, MapEntry] = {}
        for start in range(0, len(texts), CHUNK):
            rows = RecordMap.objects.filter(
                entity_type=entity, legacy_key_text__in=texts[start : start + CHUNK]
            ).values_list(*_ENTRY_FIELDS)
            for row in rows:
                found[row[0]] = _entry(*row)
        return found

    def entries_by_uuid(
        self, entity: str, uuids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, MapEntry]:
        wanted = list(uuids)
        found: dict[uuid.UUID, MapEntry] = {}
        for start in range(0, len(wanted), CHUNK):
            rows = RecordMap.objects.filter(
                entity_type=entity, destination_uuid__in=wanted[start : start + CHUNK]
            ).values_list(*_ENTRY_FIELDS)
            for row in rows:
                entry = _entry(*row)
                # Should one UUID ever be mapped twice, a live entry speaks for the row.
                if entry.uuid not in found or not entry.deleted:
                    found[entry.uuid] = entry
        return found

    def quarantined(self, entity: str, key_texts: Collection[str]) -> dict[str, str]:
        texts = list(key_texts)
        found: dict[str, str] = {}
        for start in range(0, len(texts), CHUNK):
            found.update(
                QuarantinedRecord.objects.filter(
                    entity_type=entity,
                    legacy_key_text__in=texts[start : start + CHUNK],
                    resolved_at__isnull=True,
                ).values_list("legacy_key_text", "reason")
            )
        return found


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
    batch_size: int = DEFAULT_BATCH_SIZE,
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
    source = open_named(active.mapping.source)
    destination = open_named(active.mapping.destination)
    ports = ControlVerifyPorts()
    results = []
    try:
        for name in names:
            spec = active.entity(name)
            compiled = compile_entity(
                spec,
                source.require_table(spec.source_table),
                destination.require_table(spec.destination_table),
                timezone=source.timezone,
            )
            result = EntityVerifier(
                compiled=compiled,
                source=source,
                destination=destination,
                ports=ports,
                mapping_version=active.versions[name],
                batch_size=batch_size,
                cap=cap,
            ).run()
            _log(result, actor=actor)
            results.append(result)
    finally:
        source.close()
        destination.close()
    return VerifyReport(entities=results)


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
