"""Reads about one record: its destination UUID and its history, for auditors and `lookup`.

Keys compare exactly (binary): ``P-001`` and ``p-001`` are two records. When a key is not
found, ``similar_keys`` looks for the keys people most often meant instead, the same key in
another case or without its trailing spaces, so that the page can ask "did you mean".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from migrationsapp.models import QuarantinedRecord, RecordEvent, RecordMap

# Quarantine entries shown on a record's page (its open one and the latest resolved ones).
QUARANTINE_HISTORY = 10
# Every case variant of a key is probed while it has at most this many letters (2^8 = 256
# variants); a longer key is probed in its usual spellings only (see ``_case_variants``).
ALL_CASES_UP_TO = 8
SIMILAR_LIMIT = 5
# Keys read in index order right after the typed one, looking for it with trailing spaces.
SPACE_SCAN = 20


@dataclass
class RecordHistory:
    entity: str
    key_text: str
    uuid: str | None
    deleted_at: str | None
    events: list[dict[str, Any]]
    quarantine: dict[str, Any] | None
    # Every quarantine entry of the record, newest first (the page shows who resolved it and
    # why); not part of the CLI's document.
    quarantine_entries: list[QuarantinedRecord] = field(default_factory=list)

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
    entries = list(
        QuarantinedRecord.objects.filter(entity_type=entity, legacy_key_text=key_text).order_by(
            "-id"
        )[:QUARANTINE_HISTORY]
    )
    open_entry = next((e for e in entries if e.resolved_at is None), None)
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
        quarantine_entries=entries,
    )


def _case_variants(text: str) -> set[str]:
    """The spellings of ``text`` that differ from it only in letter case.

    All of them while the key has few letters; past that (2^n grows fast) the spellings
    people type: all lower, all upper, title, first letter upper, and swapped.
    """
    letters = [i for i, char in enumerate(text) if char.lower() != char.upper()]
    if len(letters) <= ALL_CASES_UP_TO:
        variants = set()
        for cases in itertools.product((str.lower, str.upper), repeat=len(letters)):
            chars = list(text)
            for position, change in zip(letters, cases, strict=True):
                chars[position] = change(chars[position])
            variants.add("".join(chars))
        return variants
    return {text.lower(), text.upper(), text.title(), text.capitalize(), text.swapcase()}


def similar_keys(*, entity: str, key_text: str, limit: int = SIMILAR_LIMIT) -> list[str]:
    """Known keys of ``entity`` equal to ``key_text`` but for case or trailing spaces.

    The record map can hold millions of keys and its index, (entity, key), is in the
    column's collation, so a case-insensitive comparison (``lower(key) = …``) would read
    every key of the entity. Instead, every probe here is bounded and served by the index:

    * equality on the case variants of the key, with and without its trailing spaces (an
      ``IN`` list of at most twice 2^ALL_CASES_UP_TO values);
    * the ``SPACE_SCAN`` keys that follow the key in index order, kept when they are the
      key with trailing spaces (a legacy CHAR column pads its values): in byte order, and
      in the usual collations, those come right after the key.

    The open quarantine (a record refused before it was ever migrated is not in the map)
    is probed the same way, through its unique index on open entries.
    """
    stripped = key_text.rstrip(" ")
    candidates = _case_variants(key_text) | (_case_variants(stripped) if stripped else set())
    candidates.discard(key_text)
    found: set[str] = set()
    for model, scope in (
        (RecordMap, {}),
        (QuarantinedRecord, {"resolved_at__isnull": True}),
    ):
        rows = model.objects.filter(entity_type=entity, **scope)
        if candidates:
            found.update(
                rows.filter(legacy_key_text__in=sorted(candidates))
                .order_by("legacy_key_text")
                .values_list("legacy_key_text", flat=True)[:limit]
            )
        if stripped:
            following = (
                rows.filter(legacy_key_text__gt=stripped)
                .order_by("legacy_key_text")
                .values_list("legacy_key_text", flat=True)[:SPACE_SCAN]
            )
            found.update(k for k in following if k != key_text and k.rstrip(" ") == stripped)
    return sorted(found)[:limit]
