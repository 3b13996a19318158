"""What an operator does with a quarantined record: retry it on the next run, or resolve it.

Both are compare-and-set updates on the open entry (``filter(pk=…, resolved_at=None, …)
.update(…)``, then the count is checked): a run that resolves or re-quarantines the record at
the same moment, or a second click, cannot be overwritten; the loser gets a
``QuarantineActionError`` saying what the entry's state is now. Each action is written to the
execution log (operation ``validation``, action ``quarantine.retried`` or
``quarantine.resolved``, the user as its actor) in the same transaction.

**Retry on next run.** Every open entry is in the next analysis's change set anyway
(``services.changeset``): ``retry`` when its content hash and mapping version are those it
failed with, else ``new`` or ``modified``. The action makes the next run write the record
again as if its content were new to diffmig: it clears the content hash of

* the open quarantine entry, so the classification no longer calls it ``retry``, and
* the record map entry of the record, if it has one, so the hash comparison always differs.

The next analysis therefore counts the record as ``new`` (never migrated) or ``modified``
and the run writes it again, with its existing destination UUID. Nothing else changes: the
record map's hash means "the content last written", and an empty one only says "unknown,
write again". If the retry fails again, the run stores the new reason and hash on the same
entry; if it succeeds, the run resolves the entry. An empty hash on an open entry is also how
the quarantine page shows "retry requested".

**Resolved.** Sets ``resolved_at``, ``resolved_by`` and ``resolution_note``: the operator
says the record needs nothing more (fixed in the destination by hand, say) and why; the note
is required. A record that still fails on a later run is quarantined again under a new entry.

**In bulk.** Both actions also apply to a selection (``QuarantineSelection``): entries by id,
whole groups (entity, rule, field) and "families" (an entry with the open entries refused
because it was missing: ``selectors.quarantine_links``). Each is one compare-and-set
``UPDATE`` over the open entries of the selection, whatever its size, and one log entry
naming the user, the note, the selection and how many entries changed; entries already
resolved (or already marked for retry) are left as they are and counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from migrationsapp.engine.errors import TerminalError
from migrationsapp.models import QuarantinedRecord, RecordMap
from migrationsapp.models.choices import AuditAction, OperationType
from migrationsapp.selectors.quarantine_links import children_of, reference_links
from migrationsapp.services.logs import log_event
from migrationsapp.services.users import username

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

NOTE_MAX = 2000
# Ids named in a bulk action's log entry; beyond, the entry gives their number only.
LOGGED_IDS = 200


class QuarantineActionError(TerminalError):
    """The entry is not in a state that allows the action (resolved, or already requested)."""


def _refusal(entry_id: int, action: str) -> QuarantineActionError:
    """Why a compare-and-set found nothing to update, from the entry's state now."""
    entry = QuarantinedRecord.objects.filter(pk=entry_id).first()
    if entry is None:
        return QuarantineActionError(f"quarantine entry {entry_id} does not exist")
    what = f"{entry.entity_type} {entry.legacy_key_text}"
    if entry.resolved_at is not None:
        return QuarantineActionError(
            f"{what}: cannot {action}: it was resolved at {entry.resolved_at:%Y-%m-%d %H:%M:%S}",
            hint="Reload the page.",
        )
    return QuarantineActionError(
        f"{what}: a retry on the next run is already requested", hint="Reload the page."
    )


def _log(
    entry: QuarantinedRecord,
    *,
    action: AuditAction,
    message: str,
    user: str,
    context: dict | None = None,
) -> None:
    log_event(
        session_id=None,
        operation=OperationType.VALIDATION,
        action=action,
        actor=user,
        entity=entry.entity_type,
        record_id=entry.legacy_key_text,
        message=message,
        context={"quarantine_id": entry.pk, **(context or {})},
    )


@transaction.atomic
def retry_quarantined_record(*, entry_id: int, user: AbstractBaseUser | None) -> QuarantinedRecord:
    """Make the next analysis take this open entry's record again (see the module docstring).

    Refused (``QuarantineActionError``) when the entry is resolved or a retry is already
    requested; nothing changes then.
    """
    changed = (
        QuarantinedRecord.objects.filter(pk=entry_id, resolved_at__isnull=True)
        .exclude(content_hash="")
        .update(content_hash="")
    )
    if changed != 1:
        raise _refusal(entry_id, "retry it")
    entry = QuarantinedRecord.objects.get(pk=entry_id)
    RecordMap.objects.filter(
        entity_type=entry.entity_type, legacy_key_text=entry.legacy_key_text
    ).update(content_hash="")
    name = username(user)
    _log(
        entry,
        action=AuditAction.QUARANTINE_RETRIED,
        user=name,
        message=f"{entry.entity_type} {entry.legacy_key_text}: {name} asked to retry the "
        "quarantined record on the next run",
    )
    return entry


def clean_note(note: str, *, required: bool, what: str) -> str:
    """The note as stored: stripped, within NOTE_MAX; refused when required and empty."""
    text = (note or "").strip()
    if required and not text:
        raise QuarantineActionError(
            f"{what}: a note is required to resolve",
            hint="Say why the record needs nothing more (fixed by hand, obsolete, …).",
        )
    if len(text) > NOTE_MAX:
        raise QuarantineActionError(
            f"{what}: the note has {len(text)} characters; at most {NOTE_MAX} are kept",
            hint="Shorten the note.",
        )
    return text


@transaction.atomic
def resolve_quarantined_record(
    *, entry_id: int, user: AbstractBaseUser | None, note: str
) -> QuarantinedRecord:
    """Mark an open entry resolved, by whom and why; refused when already resolved or when
    the note is empty (nothing changes then)."""
    text = clean_note(note, required=True, what=f"quarantine entry {entry_id}")
    name = username(user)
    changed = QuarantinedRecord.objects.filter(pk=entry_id, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=name, resolution_note=text
    )
    if changed != 1:
        raise _refusal(entry_id, "resolve it")
    entry = QuarantinedRecord.objects.get(pk=entry_id)
    _log(
        entry,
        action=AuditAction.QUARANTINE_RESOLVED,
        user=name,
        message=f"{entry.entity_type} {entry.legacy_key_text}: {name} marked the quarantined "
        f"record resolved: {text}",
        context={"note": text},
    )
    return entry


# --------------------------------------------------------------------------- in bulk


@dataclass(frozen=True)
class QuarantineGroupKey:
    entity: str
    rule: str
    field: str

    def __str__(self) -> str:
        on = f" on {self.field}" if self.field else ""
        return f"{self.entity} {self.rule}{on}"


@dataclass(frozen=True)
class QuarantineSelection:
    """What a bulk action applies to; only the open entries of it change."""

    ids: tuple[int, ...] = ()
    groups: tuple[QuarantineGroupKey, ...] = ()
    families: tuple[int, ...] = ()  # these entries and their quarantined children

    @property
    def is_empty(self) -> bool:
        return not (self.ids or self.groups or self.families)

    def describe(self) -> str:
        parts = []
        if self.ids:
            parts.append(f"{len(self.ids)} selected entr{'y' if len(self.ids) == 1 else 'ies'}")
        parts += [f"group {group}" for group in self.groups]
        if self.families:
            one = len(self.families) == 1
            parts.append(
                f"{len(self.families)} entr{'y' if one else 'ies'} with "
                f"{'its' if one else 'their'} dependants"
            )
        return ", ".join(parts)

    def as_log(self) -> dict:
        return {
            "ids": list(self.ids[:LOGGED_IDS]),
            "id_count": len(self.ids),
            "groups": [[g.entity, g.rule, g.field] for g in self.groups],
            "families": list(self.families[:LOGGED_IDS]),
        }


@dataclass(frozen=True)
class BulkOutcome:
    changed: int
    skipped: int | None  # entries named by id (or family) that were not open; None for groups

    def summary(self, done: str) -> str:
        text = f"{self.changed} quarantine entr{'y' if self.changed == 1 else 'ies'} {done}"
        if self.skipped:
            text += f"; {self.skipped} left as they were (already resolved or requested)"
        return text + "."


def _selection_q(selection: QuarantineSelection) -> Q:
    """The selection as one condition on quarantine entries (children found set-wise)."""
    condition = Q(pk__in=list(selection.ids)) if selection.ids else Q(pk__in=[])
    for group in selection.groups:
        condition |= Q(entity_type=group.entity, rule=group.rule, field=group.field)
    if selection.families:
        parents = list(
            QuarantinedRecord.objects.filter(pk__in=list(selection.families), resolved_at=None)
        )
        condition |= Q(pk__in=[p.pk for p in parents])
        children = children_of(reference_links(), parents)
        if children is not None:
            condition |= children
    return condition


def _named(selection: QuarantineSelection) -> int | None:
    """How many entries the selection names one by one; None when it holds a group or a
    family (their size is not known beforehand)."""
    if selection.groups or selection.families:
        return None
    return len(set(selection.ids))


def _check(selection: QuarantineSelection) -> None:
    if selection.is_empty:
        raise QuarantineActionError(
            "no quarantine entry selected", hint="Tick entries or a group, then choose an action."
        )


def _bulk_outcome(
    *,
    action: AuditAction,
    message: str,
    user: str,
    note: str,
    selection: QuarantineSelection,
    changed: int,
) -> BulkOutcome:
    """Log a bulk action (one entry for the whole selection) and say what it changed."""
    log_event(
        session_id=None,
        operation=OperationType.VALIDATION,
        action=action,
        actor=user,
        message=message,
        context={
            "note": note,
            "changed": changed,
            "selection": selection.as_log(),
        },
    )
    named = _named(selection)
    return BulkOutcome(changed=changed, skipped=None if named is None else named - changed)


@transaction.atomic
def retry_quarantined_records(
    *, selection: QuarantineSelection, user: AbstractBaseUser | None, note: str = ""
) -> BulkOutcome:
    """``retry_quarantined_record`` for every open entry of the selection not yet requested.

    Two set-wise updates: the record map's hashes of those records first (while the entries
    still tell which ones), then the entries' own hashes, by compare-and-set. A run that
    resolves one of them in between at worst leaves an empty map hash behind, which only
    makes a later run write that record once more.
    """
    _check(selection)
    text = clean_note(note, required=False, what="bulk retry")
    pending = QuarantinedRecord.objects.filter(
        _selection_q(selection), resolved_at__isnull=True
    ).exclude(content_hash="")
    RecordMap.objects.filter(
        Exists(
            pending.filter(
                entity_type=OuterRef("entity_type"), legacy_key_text=OuterRef("legacy_key_text")
            )
        )
    ).update(content_hash="")
    changed = pending.update(content_hash="")
    name = username(user)
    return _bulk_outcome(
        action=AuditAction.QUARANTINE_RETRIED,
        user=name,
        note=text,
        selection=selection,
        changed=changed,
        message=f"{name} asked to retry {changed} quarantined records on the next run "
        f"({selection.describe()})" + (f": {text}" if text else ""),
    )


@transaction.atomic
def resolve_quarantined_records(
    *, selection: QuarantineSelection, user: AbstractBaseUser | None, note: str
) -> BulkOutcome:
    """Resolve every open entry of the selection, by whom and why (the note is required)."""
    _check(selection)
    text = clean_note(note, required=True, what=selection.describe())
    name = username(user)
    changed = QuarantinedRecord.objects.filter(
        _selection_q(selection), resolved_at__isnull=True
    ).update(resolved_at=timezone.now(), resolved_by=name, resolution_note=text)
    return _bulk_outcome(
        action=AuditAction.QUARANTINE_RESOLVED,
        user=name,
        note=text,
        selection=selection,
        changed=changed,
        message=f"{name} marked {changed} quarantined records resolved "
        f"({selection.describe()}): {text}",
    )
