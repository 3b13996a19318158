"""Reads about one record: its destination UUID and its history, for auditors and `lookup`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrationsapp.models import QuarantinedRecord, RecordEvent, RecordMap


@dataclass
class RecordHistory:
    entity: str
    key_text: str
    uuid: str | None
    deleted_at: str | None
    events: list[dict[str, Any]]
    quarantine: dict[str, Any] | None

    @property
    def found(self) -> bool:
        return self.uuid is not None or bool(self.events)

    def as_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "key": self.key_text,
            "uuid": self.uuid,
            "deleted_at": self.deleted_at,
            "events": self.events,
            "quarantine": self.quarantine,
        }


def record_history(*, entity: str, key_text: str) -> RecordHistory:
    entry = RecordMap.objects.filter(entity_type=entity, legacy_key_text=key_text).first()
    events = [
        {
            "time": e.occurred_at.isoformat(),
            "session": str(e.session_id),
            "action": e.action,
            "mapping_version": e.mapping_version,
            "reason": e.reason,
        }
        for e in RecordEvent.objects.filter(entity_type=entity, legacy_key_text=key_text).order_by(
            "occurred_at", "id"
        )
    ]
    open_entry = QuarantinedRecord.objects.filter(
        entity_type=entity, legacy_key_text=key_text, resolved_at__isnull=True
    ).first()
    quarantine = None
    if open_entry:
        quarantine = {
            "rule": open_entry.rule,
            "field": open_entry.field,
            "value": open_entry.value,
            "reason": open_entry.reason,
            "first_seen_at": open_entry.first_seen_at.isoformat(),
            "last_seen_at": open_entry.last_seen_at.isoformat(),
        }
    return RecordHistory(
        entity=entity,
        key_text=key_text,
        uuid=str(entry.destination_uuid) if entry else None,
        deleted_at=entry.deleted_at.isoformat() if entry and entry.deleted_at else None,
        events=events,
        quarantine=quarantine,
    )
