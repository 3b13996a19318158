"""What an operator does with a quarantined record: retry it on the next run, or resolve it.

Both are compare-and-set updates on the open entry (``filter(pk=…, resolved_at=None, …)
.update(…)``, then the count is checked): a run that resolves or re-quarantines the record at
the same moment, or a second click, cannot be overwritten; the loser gets a
``QuarantineActionError`` saying what the entry's state is now. Each action is written to the
execution log (operation ``validation``, naming the user) in the same transaction.

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

**Resolved.** Sets ``resolved_at``: the operator says the record needs nothing more (fixed
in the destination by hand, say). A record that still fails on a later run is quarantined
again under a new entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from migrationsapp.engine.errors import TerminalError
from migrationsapp.models import QuarantinedRecord, RecordMap
from migrationsapp.models.choices import OperationType
from migrationsapp.services.logs import log_event

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

RETRY_ACTION = "diffmig.quarantine.retry_requested"
RESOLVE_ACTION = "diffmig.quarantine.resolved"


class QuarantineActionError(TerminalError):
    """The entry is not in a state that allows the action (resolved, or already requested)."""


def _username(user: AbstractBaseUser | None) -> str:
    return user.get_username() if user is not None else "someone"


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


def _log(entry: QuarantinedRecord, *, action: str, message: str, user: str) -> None:
    log_event(
        session_id=None,
        operation=OperationType.VALIDATION,
        entity=entry.entity_type,
        record_id=entry.legacy_key_text,
        message=message,
        context={"action": action, "quarantine_id": entry.pk, "user": user},
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
    name = _username(user)
    _log(
        entry,
        action=RETRY_ACTION,
        user=name,
        message=f"{entry.entity_type} {entry.legacy_key_text}: {name} asked to retry the "
        "quarantined record on the next run",
    )
    return entry


@transaction.atomic
def resolve_quarantined_record(
    *, entry_id: int, user: AbstractBaseUser | None
) -> QuarantinedRecord:
    """Mark an open entry resolved (``resolved_at`` = now); refused when already resolved."""
    now = timezone.now()
    changed = QuarantinedRecord.objects.filter(pk=entry_id, resolved_at__isnull=True).update(
        resolved_at=now
    )
    if changed != 1:
        raise _refusal(entry_id, "resolve it")
    entry = QuarantinedRecord.objects.get(pk=entry_id)
    name = _username(user)
    _log(
        entry,
        action=RESOLVE_ACTION,
        user=name,
        message=f"{entry.entity_type} {entry.legacy_key_text}: {name} marked the quarantined "
        "record resolved",
    )
    return entry
