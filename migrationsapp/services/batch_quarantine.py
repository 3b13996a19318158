"""A batch's quarantine, written inside its control commit.

A record that failed opens a quarantine entry (or refreshes the open one: a record keeps
one open entry, with its latest reason); a record that now succeeded closes its open
entry. ``services.batches`` (the upserts and deletes) and ``services.run_ports`` (the
second pass of ``reference: self``) call these in their control transactions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import connection

from migrationsapp.engine.outcomes import WRITTEN_ACTIONS, RecordAction
from migrationsapp.engine.ports import RecordOutcome
from migrationsapp.models import QuarantinedRecord
from migrationsapp.services.bulk import copy_available
from migrationsapp.services.key_probes import probe_ids, probe_keys
from migrationsapp.services.record_writes import CHUNK, BatchScope

# The columns an open entry takes from its latest failure.
REFRESHED = (
    "rule",
    "field",
    "value",
    "reason",
    "content_hash",
    "mapping_version",
    "last_session_id",
    "last_seen_at",
)


def stored_value(value: object, limit: int) -> str:
    """A refused value as the quarantine and the log keep it: text, cut at ``limit``, with
    NUL bytes written out (PostgreSQL text and jsonb cannot hold them: the very value that
    failed a row must not fail the batch's control commit too)."""
    if value is None:
        return ""
    return str(value)[:limit].replace("\x00", "\\x00")


def write_quarantine(
    scope: BatchScope, outcomes: Sequence[RecordOutcome], now: dt.datetime
) -> None:
    """Close the entries of the records written now; open or refresh those that failed."""
    failed = {o.key_text: o for o in outcomes if o.action == RecordAction.FAILED}
    succeeded = [o.key_text for o in outcomes if o.action in WRITTEN_ACTIONS]
    resolve_quarantine(scope.entity, succeeded, now)
    if not failed:
        return
    existing = {
        q.legacy_key_text: q
        for q in QuarantinedRecord.objects.filter(
            entity_type=scope.entity, legacy_key_text__in=list(failed), resolved_at__isnull=True
        )
    }
    to_update, to_create = [], []
    for key_text, outcome in failed.items():
        error = outcome.error
        values = {
            "rule": (error.rule if error else "") or "transform",
            "field": (error.field if error else "") or "",
            "value": "" if error is None else stored_value(error.value, 2000),
            "reason": str(error) if error else "failed",
            "content_hash": outcome.content_hash,
            "mapping_version": scope.mapping_version,
            "last_session_id": scope.session_id,
            "last_seen_at": now,
        }
        record = existing.get(key_text)
        if record is None:
            to_create.append(
                QuarantinedRecord(
                    entity_type=scope.entity,
                    legacy_key=outcome.key,
                    legacy_key_text=key_text,
                    first_seen_at=now,
                    **values,
                )
            )
        else:
            for name, value in values.items():
                setattr(record, name, value)
            to_update.append(record)
    QuarantinedRecord.objects.bulk_create(to_create, batch_size=CHUNK)
    QuarantinedRecord.objects.bulk_update(to_update, list(REFRESHED), batch_size=CHUNK)


def resolve_quarantine(entity: str, key_texts: list[str], now: dt.datetime) -> None:
    """Close the open quarantine entries of records that have now succeeded."""
    if not key_texts:
        return
    if not QuarantinedRecord.objects.filter(entity_type=entity, resolved_at__isnull=True).exists():
        # The common case, and one index probe: no open entry of this entity to close,
        # so no need to look each of the batch's keys up.
        return
    if copy_available():
        # One statement with an array parameter and one index probe per key (key_probes),
        # rather than an IN list of 1000 keys per chunk that the ORM compiles.
        table = QuarantinedRecord._meta.db_table
        picked = probe_ids(
            table,
            scope_column="entity_type",
            key_column="legacy_key_text",
            key_type="text",
            where="AND resolved_at IS NULL",
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET resolved_at = %s WHERE {picked}",
                [now, probe_keys(key_texts, "text"), entity],
            )
        return
    for start in range(0, len(key_texts), CHUNK):
        QuarantinedRecord.objects.filter(
            entity_type=entity,
            legacy_key_text__in=key_texts[start : start + CHUNK],
            resolved_at__isnull=True,
        ).update(resolved_at=now)
