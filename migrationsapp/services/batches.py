"""The runner's ports on the control database: change set, record map, batch commit, stop check.

``commit_batch`` is the control half of the two-commit protocol: in one transaction it
checks the unit's lease (compare-and-set: a second copy of a job stops here without
writing), then writes the record map, the record events, the quarantine, the checkpoint,
the counters and the batch's log lines.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass

import psycopg
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from migrationsapp.engine.errors import LeaseLostError
from migrationsapp.engine.ports import DELETE, BatchResult, Change, RecordOutcome, StopRequest
from migrationsapp.models import (
    AnalysisChange,
    MigrationCheckpoint,
    MigrationControl,
    MigrationStatus,
    QuarantinedRecord,
    RecordEvent,
    RecordMap,
)
from migrationsapp.models.choices import (
    ChangeKind,
    CheckpointState,
    EntityState,
    LogLevel,
    OperationType,
    RecordAction,
)
from migrationsapp.services.bulk import Same, copy_available, copy_columns, copy_upsert
from migrationsapp.services.changeset import read_change_rows
from migrationsapp.services.logs import bulk_log, log_event, record_entry

CHUNK = 1000

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
# An update's changed fields, already JSON-safe (engine.changes).
EVENT_JSON = frozenset({"changes"})
UPSERT_KINDS = (ChangeKind.NEW, ChangeKind.MODIFIED, ChangeKind.RETRY)


def key_json(keys: list[list[object]]) -> list[str]:
    """Typed legacy keys as the JSON the record map stores. A one-column integer key, the
    common case, is written without a trip through ``json.dumps`` per record."""
    if all(len(k) == 1 and type(k[0]) is int for k in keys):
        return [f"[{k[0]}]" for k in keys]
    return [json.dumps(k) for k in keys]


def stored_value(value: object, limit: int) -> str:
    """A refused value as the quarantine and the log keep it: text, cut at ``limit``, with
    NUL bytes written out (PostgreSQL text and jsonb cannot hold them: the very value that
    failed a row must not fail the batch's control commit too)."""
    if value is None:
        return ""
    return str(value)[:limit].replace("\x00", "\\x00")


@dataclass
class ControlRunPorts:
    control_id: uuid.UUID
    run_id: uuid.UUID
    session_id: uuid.UUID
    analysis_id: uuid.UUID
    entity: str
    lease_owner: str
    mapping_version: int
    dry_run: bool = False
    # A partition of the upserts (services.partitions): its checkpoint row, whose lease this
    # copy holds, and its unit and range of change ids. None: the whole entity.
    partition_id: uuid.UUID | None = None
    unit: str = ""
    lo: int | None = None
    hi: int | None = None

    # -- reads -------------------------------------------------------------------------------

    def read_changes(self, *, after_id: int, phase: str, limit: int) -> list[Change]:
        upserts = phase != DELETE
        rows = read_change_rows(
            analysis_id=self.analysis_id,
            kinds=UPSERT_KINDS if upserts else (ChangeKind.DELETED,),
            after_id=after_id,
            limit=limit,
            lo=self.lo if upserts else None,
            hi=self.hi if upserts else None,
        )
        return [
            Change(id=i, kind=k, key=key, key_text=t, content_hash=h) for i, k, key, t, h in rows
        ]

    def _in_range(self, query):
        """Only the partition's changes (its range of ids, both ends included)."""
        if self.lo is not None:
            query = query.filter(id__gte=self.lo)
        if self.hi is not None:
            query = query.filter(id__lte=self.hi)
        return query

    def lookup_uuids(
        self, entity: str, key_texts: Collection[str], *, include_deleted: bool
    ) -> dict[str, uuid.UUID]:
        found: dict[str, uuid.UUID] = {}
        texts = list(key_texts)
        if copy_available():
            # One statement with an array parameter: far cheaper than IN lists of 1000.
            deleted = "" if include_deleted else " AND deleted_at IS NULL"
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT legacy_key_text, destination_uuid FROM migration_mappings "
                    f"WHERE entity_type = %s AND legacy_key_text = ANY(%s){deleted}",
                    [entity, texts],
                )
                return dict(cursor.fetchall())
        for start in range(0, len(texts), CHUNK):
            query = RecordMap.objects.filter(
                entity_type=entity, legacy_key_text__in=texts[start : start + CHUNK]
            )
            if not include_deleted:
                query = query.filter(deleted_at__isnull=True)
            found.update(query.values_list("legacy_key_text", "destination_uuid"))
        return found

    def stop_requested(self) -> StopRequest:
        pause, cancel = (
            MigrationStatus.objects.filter(migration_session_id=self.session_id)
            .values_list("pause_requested_at", "cancel_requested_at")
            .get()
        )
        if cancel:
            return StopRequest.CANCEL
        if pause:
            return StopRequest.PAUSE
        return StopRequest.NONE

    # -- the control commit ------------------------------------------------------------------

    def commit_batch(self, result: BatchResult) -> None:
        now = timezone.now()
        with transaction.atomic():
            self._check_lease(now)
            if not result.dry_run:
                self._write_record_map(result.outcomes, now)
                self._write_events(result.outcomes, now)
                self._write_quarantine(result.outcomes, now)
            self._write_checkpoint(result)
            MigrationControl.objects.filter(pk=self.control_id).update(
                processed_count=F("processed_count") + result.processed,
                failed_count=F("failed_count") + result.failed,
                skipped_count=F("skipped_count") + result.skipped,
                updated_at=now,
            )
            done = result.processed + result.failed + result.skipped
            MigrationStatus.objects.filter(migration_session_id=self.session_id).update(
                total_records_processed=F("total_records_processed") + result.processed,
                total_records_remaining=Greatest(F("total_records_remaining") - done, 0),
                updated_at=now,
            )
            self._write_logs(result)

    def _check_lease(self, now) -> None:
        """Compare-and-set on the unit's lease (renewing it): the entity's, or for a partition
        its own while the entity still runs. A copy that lost it stops here, writing nothing."""
        if self.partition_id is None:
            held = MigrationControl.objects.filter(
                pk=self.control_id, lease_owner=self.lease_owner
            ).update(lease_heartbeat=now)
        else:
            held = MigrationCheckpoint.objects.filter(
                pk=self.partition_id, lease_owner=self.lease_owner
            ).update(lease_heartbeat=now)
            held = held and (
                MigrationControl.objects.filter(
                    pk=self.control_id, state=EntityState.RUNNING
                ).exists()
            )
        if held != 1:
            what = f" ({self.unit})" if self.unit else ""
            raise LeaseLostError(
                f"entity {self.entity!r}{what}: another worker holds the lease; this copy stops",
            )

    def _write_record_map(self, outcomes: list[RecordOutcome], now) -> None:
        written = [o for o in outcomes if o.action in (RecordAction.CREATED, RecordAction.UPDATED)]
        deleted = [o.key_text for o in outcomes if o.action == RecordAction.DELETED]
        if copy_available():
            created = [o for o in written if o.action == RecordAction.CREATED]
            if created:
                self._copy_new_map_entries(created, now)
            updated = [o for o in written if o.action == RecordAction.UPDATED]
            if updated:
                self._upsert_map_entries(updated, now)
            if deleted:
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE {RecordMap._meta.db_table} SET deleted_at = %s, "
                        "last_session_id = %s, last_migrated_at = %s "
                        "WHERE entity_type = %s AND legacy_key_text = ANY(%s)",
                        [now, self.session_id, now, self.entity, deleted],
                    )
            return
        if written:
            RecordMap.objects.bulk_create(
                [
                    RecordMap(
                        entity_type=self.entity,
                        legacy_key=o.key,
                        legacy_key_text=o.key_text,
                        destination_uuid=o.uuid,
                        content_hash=o.content_hash,
                        mapping_version=self.mapping_version,
                        first_session_id=self.session_id,
                        last_session_id=self.session_id,
                        first_migrated_at=now,
                        last_migrated_at=now,
                        deleted_at=None,
                    )
                    for o in written
                ],
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
                entity_type=self.entity, legacy_key_text__in=deleted[start : start + CHUNK]
            ).update(deleted_at=now, last_session_id=self.session_id, last_migrated_at=now)

    def _map_columns(self, outcomes: list[RecordOutcome], now) -> list:
        """The record map's columns (``MAP_COLUMNS``) for these outcomes, a column at a time."""
        return [
            Same(self.entity),
            key_json([o.key for o in outcomes]),
            [o.key_text for o in outcomes],
            [o.uuid for o in outcomes],
            [o.content_hash for o in outcomes],
            Same(self.mapping_version),
            Same(self.session_id),
            Same(self.session_id),
            Same(now),
            Same(now),
        ]

    def _copy_new_map_entries(self, created: list[RecordOutcome], now) -> None:
        """Records written for the first time: COPY straight into the map, no stage and no
        conflict check per row. "Created" means the map had no entry when the batch looked
        (and the unit's lease keeps other writers of the entity away); should one be there
        all the same, the savepoint takes the COPY back and the entries are merged instead."""
        table = RecordMap._meta.db_table
        columns = self._map_columns(created, now)
        try:
            with transaction.atomic():
                copy_columns(table, MAP_COLUMNS, columns, count=len(created), json_columns=MAP_JSON)
        except (IntegrityError, psycopg.errors.UniqueViolation):
            self._upsert_map_entries(created, now)

    def _upsert_map_entries(self, outcomes: list[RecordOutcome], now) -> None:
        copy_upsert(
            RecordMap._meta.db_table,
            MAP_COLUMNS,
            MAP_COLUMN_TYPES,
            self._map_columns(outcomes, now),
            count=len(outcomes),
            conflict=("entity_type", "legacy_key_text"),
            assignments=MAP_UPDATES,
            json_columns=MAP_JSON,
        )

    def _write_events(self, outcomes: list[RecordOutcome], now) -> None:
        if copy_available():
            copy_columns(
                RecordEvent._meta.db_table,
                EVENT_COLUMNS,
                [
                    Same(self.entity),
                    [o.key_text for o in outcomes],
                    Same(self.session_id),
                    [o.action for o in outcomes],
                    [o.uuid for o in outcomes],
                    [o.content_hash for o in outcomes],
                    Same(self.mapping_version),
                    [o.reason for o in outcomes],
                    Same(now),
                    [o.changes for o in outcomes],
                ],
                count=len(outcomes),
                json_columns=EVENT_JSON,
            )
            return
        RecordEvent.objects.bulk_create(
            [
                RecordEvent(
                    entity_type=self.entity,
                    legacy_key_text=o.key_text,
                    session_id=self.session_id,
                    action=o.action,
                    destination_uuid=o.uuid,
                    content_hash=o.content_hash,
                    mapping_version=self.mapping_version,
                    reason=o.reason,
                    occurred_at=now,
                    changes=o.changes,
                )
                for o in outcomes
            ],
            batch_size=CHUNK,
        )

    def _write_quarantine(self, outcomes: list[RecordOutcome], now) -> None:
        failed = {o.key_text: o for o in outcomes if o.action == RecordAction.FAILED}
        succeeded = [
            o.key_text
            for o in outcomes
            if o.action in (RecordAction.CREATED, RecordAction.UPDATED, RecordAction.DELETED)
        ]
        self._resolve_quarantine(succeeded, now)
        if not failed:
            return
        existing = {
            q.legacy_key_text: q
            for q in QuarantinedRecord.objects.filter(
                entity_type=self.entity, legacy_key_text__in=list(failed), resolved_at__isnull=True
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
                "mapping_version": self.mapping_version,
                "last_session_id": self.session_id,
                "last_seen_at": now,
            }
            record = existing.get(key_text)
            if record is None:
                to_create.append(
                    QuarantinedRecord(
                        entity_type=self.entity,
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
        QuarantinedRecord.objects.bulk_update(
            to_update,
            [
                "rule",
                "field",
                "value",
                "reason",
                "content_hash",
                "mapping_version",
                "last_session_id",
                "last_seen_at",
            ],
            batch_size=CHUNK,
        )

    def _resolve_quarantine(self, key_texts: list[str], now) -> None:
        """Close the open quarantine entries of records that have now succeeded."""
        if not key_texts:
            return
        if not QuarantinedRecord.objects.filter(
            entity_type=self.entity, resolved_at__isnull=True
        ).exists():
            # The common case, and one index probe: no open entry of this entity to close,
            # so no need to look each of the batch's keys up.
            return
        if copy_available():
            # One statement with an array parameter, rather than an IN list of 1000 keys per
            # chunk that the ORM compiles and psycopg binds client-side: the same rows.
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {QuarantinedRecord._meta.db_table} SET resolved_at = %s "
                    "WHERE entity_type = %s AND legacy_key_text = ANY(%s) "
                    "AND resolved_at IS NULL",
                    [now, self.entity, key_texts],
                )
            return
        for start in range(0, len(key_texts), CHUNK):
            QuarantinedRecord.objects.filter(
                entity_type=self.entity,
                legacy_key_text__in=key_texts[start : start + CHUNK],
                resolved_at__isnull=True,
            ).update(resolved_at=now)

    def _write_checkpoint(self, result: BatchResult) -> None:
        partition = self.partition_id is not None and result.phase != DELETE
        checkpoint, created = MigrationCheckpoint.objects.get_or_create(
            migration_run_id=self.run_id,
            unit=self.unit if partition else result.phase,
            defaults={"entity_type": self.entity, "state": CheckpointState.ACTIVE},
        )
        done = result.processed + result.failed + result.skipped
        changes = AnalysisChange.objects.filter(
            analysis_id=self.analysis_id,
            kind__in=(ChangeKind.DELETED,) if result.phase == DELETE else UPSERT_KINDS,
        )
        if partition:
            changes = self._in_range(changes)
        if created:  # the unit's first batch: count what is left, once
            remaining = changes.filter(id__gt=result.last_change_id).count()
        else:
            # Then subtract the changes this batch covered, counted over its own id range:
            # counting all that remain made every batch cost as much as the rest of the
            # entity (quadratic on a large one). The checkpoint row moves in this same
            # transaction, under the lease, so the two numbers cannot drift apart.
            covered = changes.filter(
                id__gt=checkpoint.batch_position, id__lte=result.last_change_id
            ).count()
            remaining = Greatest(F("records_remaining") - covered, 0)
        data = {"phase": result.phase, "last_change_id": result.last_change_id}
        if partition:
            data.update(lo=self.lo, hi=self.hi)
        MigrationCheckpoint.objects.filter(pk=checkpoint.pk).update(
            state=CheckpointState.ACTIVE,
            last_processed_id=str(result.last_change_id),
            batch_position=result.last_change_id,
            records_processed=F("records_processed") + done,
            records_remaining=remaining,
            # Merged, not replaced: the stage totals kept here (services.run_ports) stay.
            checkpoint_data={**(checkpoint.checkpoint_data or {}), **data},
            updated_at=timezone.now(),
        )

    def _write_logs(self, result: BatchResult) -> None:
        entries = []
        for outcome in result.outcomes:
            if outcome.action == RecordAction.FAILED:
                error = outcome.error
                entries.append(
                    record_entry(
                        session_id=self.session_id,
                        entity=self.entity,
                        record_id=outcome.key_text,
                        operation=OperationType.VALIDATION
                        if error is not None
                        and error.rule in {"required", "unique", "format", "range"}
                        else OperationType.RECORD_MIGRATION,
                        message=f"{self.entity} {outcome.key_text}: {error}",
                        error_details={
                            "rule": getattr(error, "rule", ""),
                            "field": getattr(error, "field", None),
                            "value": None
                            if error is None or error.value is None
                            else stored_value(error.value, 500),
                        },
                    )
                )
        bulk_log(entries)
        seconds = max(result.seconds, 1e-6)
        total = len(result.outcomes)
        verb = "deleted" if result.phase == DELETE else "written"
        log_event(
            session_id=self.session_id,
            entity=self.entity,
            operation=OperationType.CHECKPOINT_SAVE,
            # DEBUG: one line per batch would drown the records' warnings at INFO.
            level=LogLevel.DEBUG,
            message=(
                f"{self.entity}: batch of {total} ({result.phase}): {result.processed} {verb}, "
                f"{result.failed} failed, {result.skipped} skipped, "
                f"{total / seconds:,.0f} rows/s in this batch"
                + (" (dry run: nothing written)" if result.dry_run else "")
            ),
            performance_data={
                "rows": total,
                "seconds": round(result.seconds, 4),
                "rows_per_s": round(total / seconds, 1),
            },
            context={"phase": result.phase, "last_change_id": result.last_change_id},
        )
