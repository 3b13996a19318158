"""The runner's ports on the control database: change set, record map, batch commit, stop check.

``commit_batch`` is the control half of the two-commit protocol: in one transaction it
checks the unit's lease (compare-and-set: a second copy of a job stops here without
writing), then writes the record map and the record events (``services.record_writes``),
the quarantine (``services.batch_quarantine``), the checkpoint, the counters and the
batch's log lines (``services.batch_logs``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from migrationsapp.engine.errors import LeaseLostError
from migrationsapp.engine.outcomes import Phase
from migrationsapp.engine.ports import BatchResult, Change, StopRequest
from migrationsapp.models import (
    AnalysisChange,
    MigrationCheckpoint,
    MigrationControl,
    MigrationStatus,
    RecordMap,
)
from migrationsapp.models.choices import ChangeKind, CheckpointState, EntityState
from migrationsapp.services.batch_logs import log_batch
from migrationsapp.services.batch_quarantine import write_quarantine
from migrationsapp.services.bulk import copy_available
from migrationsapp.services.changeset import read_change_rows
from migrationsapp.services.record_writes import CHUNK, BatchScope, write_events, write_record_map

__all__ = ["CHUNK", "UPSERT_KINDS", "ControlRunPorts"]

UPSERT_KINDS = (ChangeKind.NEW, ChangeKind.MODIFIED, ChangeKind.RETRY)


@dataclass
class ControlRunPorts:
    """The ports of one entity run's unit (the entity, or one partition of its upserts)."""

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

    def read_changes(self, *, after_id: int, phase: Phase, limit: int) -> list[Change]:
        upserts = phase != Phase.DELETE
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

    @property
    def scope(self) -> BatchScope:
        return BatchScope(self.entity, self.session_id, self.mapping_version)

    def commit_batch(self, result: BatchResult) -> None:
        now = timezone.now()
        scope = self.scope
        with transaction.atomic():
            self._check_lease(now)
            if not result.dry_run:
                write_record_map(scope, result.outcomes, now)
                write_events(scope, result.outcomes, now)
                write_quarantine(scope, result.outcomes, now)
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
            log_batch(scope, result)

    def _check_lease(self, now: dt.datetime) -> None:
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

    def _write_checkpoint(self, result: BatchResult) -> None:
        partition = self.partition_id is not None and result.phase != Phase.DELETE
        checkpoint, created = MigrationCheckpoint.objects.get_or_create(
            migration_run_id=self.run_id,
            unit=self.unit if partition else result.phase,
            defaults={"entity_type": self.entity, "state": CheckpointState.ACTIVE},
        )
        done = result.processed + result.failed + result.skipped
        changes = AnalysisChange.objects.filter(
            analysis_id=self.analysis_id,
            kind__in=(ChangeKind.DELETED,) if result.phase == Phase.DELETE else UPSERT_KINDS,
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
