"""Reads about one record: its destination UUID and its history, for auditors and `lookup`.

An ``updated`` event names the destination fields it changed (``changed_fields``) and, for
the page, each field's value before and after (``EventRow``): whether a user is shown those
values is the view's decision (permission ``see_record_values``). An update that changed no
field reads "rewritten, no field changed", with the mapping versions when a new one rewrote
it, so an auditor tells a real change from a rewrite.

Keys compare exactly (binary): ``P-001`` and ``p-001`` are two records. When a key is not
found, ``similar_keys`` looks for the keys people most often meant instead, the same key in
another case or without its trailing spaces, so that the page can ask "did you mean".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from migrationsapp.engine.outcomes import RecordAction
from migrationsapp.models import QuarantinedRecord, RecordEvent, RecordMap

# Quarantine entries shown on a record's page (its open one and the latest resolved ones).
QUARANTINE_HISTORY = 10
# Every case variant of a key is probed while it has at most this many letters (2^8 = 256
# variants); a longer key is probed in its usual spellings only (see ``_case_variants``).
ALL_CASES_UP_TO = 8
SIMILAR_LIMIT = 5
# Keys read in index order right after the typed one, looking for it with trailing spaces.
SPACE_SCAN = 20


@dataclass(frozen=True)
class ChangedField:
    """One field an update changed, its values as the event stores them (engine.changes)."""

    name: str
    before: Any
    after: Any

    @property
    def before_text(self) -> str:
        return shown(self.before)

    @property
    def after_text(self) -> str:
        return shown(self.after)


@dataclass(frozen=True)
class EventRow:
    """One event of the history as the page shows it."""

    event: dict[str, Any]
    fields: list[ChangedField]
    # "rewritten, no field changed (mapping v3 → v4)" for an update that changed nothing.
    summary: str = ""


def shown(value: Any) -> str:
    """A stored value for people: null as ``NULL``, text quoted, a truncated text with its
    length."""
    if value is None:
        return "NULL"
    if isinstance(value, dict):  # engine.changes: a long text, cut
        return f"“{value.get('truncated', '')}…” ({value.get('length', 0):,} characters)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"“{value}”"
    return str(value)


def event_rows(events: list[dict[str, Any]], stored: list[dict | None]) -> list[EventRow]:
    """The page's rows: each event with the fields it changed (``stored``: the events'
    ``changes``, in the same order) and, for an update that changed none, what it was."""
    rows: list[EventRow] = []
    written_under: int | None = None  # the mapping version of the last write so far
    for event, changes in zip(events, stored, strict=True):
        fields = [ChangedField(n, pair[0], pair[1]) for n, pair in sorted((changes or {}).items())]
        summary = ""
        if event["action"] == RecordAction.UPDATED and changes == {}:
            summary = "rewritten, no field changed"
            version = event["mapping_version"]
            if written_under is not None and version is not None and written_under != version:
                summary += f" (mapping v{written_under} → v{version})"
        if event["action"] in (RecordAction.CREATED, RecordAction.UPDATED):
            written_under = event["mapping_version"]
        rows.append(EventRow(event=event, fields=fields, summary=summary))
    return rows


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
    # The events with their changed fields' values, for the page only.
    rows: list[EventRow] = field(default_factory=list)

    @property
    def changed_any(self) -> bool:
        """Whether some event names fields it changed (the page says who sees values)."""
        return any(row.fields for row in self.rows)

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
    found = list(
        RecordEvent.objects.filter(entity_type=entity, legacy_key_text=key_text).order_by(
            "occurred_at", "id"
        )
    )
    events = [
        {
            "time": e.occurred_at.isoformat(),
            "session": str(e.session_id),
            "action": e.action,
            "mapping_version": e.mapping_version,
            "reason": e.reason,
            # An update's changed fields by name, sorted ([]: none); null when not known.
            "changed_fields": sorted(e.changes) if e.changes is not None else None,
        }
        for e in found
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
        rows=event_rows(events, [e.changes for e in found]),
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
