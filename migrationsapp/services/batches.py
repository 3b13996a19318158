"""The runner's ports on the control database: change set, record map, batch commit, stop check.

``commit_batch`` is the control half of the two-commit protocol: in one transaction it
checks the unit's lease (compare-and-set: a second copy of a job stops here without
writing; the entity's counters go in the same statement), then writes the record map and
the record events (``services.record_writes``), the quarantine
(``services.batch_quarantine``), the session's counters, the batch's log lines
(``services.batch_logs``) and last the checkpoint, with the batch's stage seconds
(``engine.stages``) in the same UPDATE: a batch counts exactly when its checkpoint moves.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from migrationsapp.engine.errors import LeaseLostError
from migrationsapp.engine.outcomes import WRITTEN_ACTIONS, Phase, RecordAction
from migrationsapp.engine.ports import BatchResult, Change, StopRequest
from migrationsapp.engine.stages import StageTotals, clock
from migrationsapp.models import (
    AnalysisChange,
    MigrationCheckpoint,
    MigrationControl,
    MigrationStatus,
    RecordMap,
)
from migrationsapp.models.choices import ChangeKind, CheckpointState, EntityState
from migrationsapp.selectors.stages import TIMING
from migrationsapp.services.batch_logs import log_batch
from migrationsapp.services.batch_quarantine import write_quarantine
from migrationsapp.services.bulk import copy_available
from migrationsapp.services.changeset import read_change_rows
from migrationsapp.services.key_probes import probe_keys, probe_select
from migrationsapp.services.record_writes import CHUNK, BatchScope, write_events, write_record_map

__all__ = ["CHUNK", "UPSERT_KINDS", "BatchCounts", "ControlRunPorts", "check_deferred_now"]

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
            # One statement with an array parameter, one index probe per key (key_probes).
            sql = probe_select(
                RecordMap._meta.db_table,
                "t.legacy_key_text, t.destination_uuid",
                scope_column="entity_type",
                key_column="legacy_key_text",
                key_type="text",
                where="" if include_deleted else "AND deleted_at IS NULL",
                unique=True,
            )
            with connection.cursor() as cursor:
                cursor.execute(sql, [probe_keys(texts, "text"), entity])
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
        began = clock()
        outermost = not connection.in_atomic_block
        now = timezone.now()
        scope = self.scope
        counts = BatchCounts.of(result)
        with transaction.atomic():
            # First, with the entity's counters in the same statement: a copy that lost the
            # lease stops here, and the transaction takes everything back.
            counted = self._check_lease(now, counts)
            if not result.dry_run:
                write_record_map(scope, result.outcomes, now)
                write_events(scope, result.outcomes, now)
                write_quarantine(scope, result.outcomes, now)
                self._write_batch_extras(result)
            if not counted:
                MigrationControl.objects.filter(pk=self.control_id).update(
                    **counts.control_counters(now)
                )
            MigrationStatus.objects.filter(migration_session_id=self.session_id).update(
                total_records_processed=F("total_records_processed") + counts.processed,
                total_records_remaining=Greatest(F("total_records_remaining") - counts.done, 0),
                updated_at=now,
            )
            log_batch(scope, result, counts)
            check_deferred_now(outermost)
            # The checkpoint moves last, with the batch's stage seconds measured up to it: a
            # batch counts exactly when its checkpoint moves.
            seconds = result.close_control(commit_began=began)
            self._write_checkpoint(result, counts, seconds)

    def _write_batch_extras(self, result: BatchResult) -> None:
        """What a subclass records with a written batch, in its control transaction."""

    def _check_lease(self, now: dt.datetime, counts: BatchCounts | None = None) -> bool:
        """Compare-and-set on the unit's lease (renewing it): the entity's, or for a partition
        its own while the entity still runs. A copy that lost it stops here, writing nothing.

        With ``counts``, an entity's unit adds them to its control row's counters in the same
        statement and returns True. A partition does not (False): its siblings update the
        same control row, and a lock taken this early would hold them for the whole commit.
        """
        if self.partition_id is None:
            counters = {} if counts is None else counts.control_counters(now)
            held = MigrationControl.objects.filter(
                pk=self.control_id, lease_owner=self.lease_owner
            ).update(lease_heartbeat=now, **counters)
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
        return self.partition_id is None and counts is not None

    def _write_checkpoint(self, result: BatchResult, counts: BatchCounts, seconds: float) -> None:
        """Move the unit's checkpoint past the batch, with its stage seconds, in one UPDATE.
        The row is this unit's alone and this transaction holds its lease (checked first,
        compare-and-set), so reading its data and writing it back loses no one's write."""
        partition = self.partition_id is not None and result.phase != Phase.DELETE
        checkpoint, created = MigrationCheckpoint.objects.get_or_create(
            migration_run_id=self.run_id,
            unit=self.unit_of(result.phase),
            defaults={"entity_type": self.entity, "state": CheckpointState.ACTIVE},
        )
        remaining = self._remaining(checkpoint, created, result)
        data = dict(checkpoint.checkpoint_data or {})
        data.update(phase=result.phase, last_change_id=result.last_change_id)
        if partition:
            data.update(lo=self.lo, hi=self.hi)
        data.update(self._checkpoint_extras(result))
        totals = StageTotals.from_json(data.get(TIMING))
        totals.add_batch(result.stages, seconds)
        data[TIMING] = totals.to_json()
        MigrationCheckpoint.objects.filter(pk=checkpoint.pk).update(
            state=CheckpointState.ACTIVE,
            last_processed_id=str(result.last_change_id),
            batch_position=result.last_change_id,
            records_processed=F("records_processed") + counts.done,
            records_remaining=remaining,
            checkpoint_data=data,
            updated_at=timezone.now(),
        )

    def unit_of(self, phase: Phase) -> str:
        """The checkpoint unit of this copy's ``phase``: its partition's for the upserts of
        a partition, else the phase's own."""
        return self.unit if self.partition_id is not None and phase != Phase.DELETE else phase

    def _remaining(self, checkpoint: MigrationCheckpoint, created: bool, result: BatchResult):
        """The unit's changes left after ``result``: a number, or an expression on its
        checkpoint row."""
        partition = self.partition_id is not None and result.phase != Phase.DELETE
        changes = AnalysisChange.objects.filter(
            analysis_id=self.analysis_id,
            kind__in=(ChangeKind.DELETED,) if result.phase == Phase.DELETE else UPSERT_KINDS,
        )
        if partition:
            changes = self._in_range(changes)
        if created:  # the unit's first batch: count what is left, once
            return changes.filter(id__gt=result.last_change_id).count()
        # Then subtract the changes this batch covered, counted over its own id range:
        # counting all that remain made every batch cost as much as the rest of the
        # entity (quadratic on a large one). The checkpoint row moves in this same
        # transaction, under the lease, so the two numbers cannot drift apart.
        covered = changes.filter(
            id__gt=checkpoint.batch_position, id__lte=result.last_change_id
        ).count()
        return Greatest(F("records_remaining") - covered, 0)

    def _checkpoint_extras(self, result: BatchResult) -> dict:
        """What a subclass keeps in the unit's ``checkpoint_data`` with the batch."""
        return {}


@dataclass(frozen=True)
class BatchCounts:
    """A batch's outcomes counted once (each count is a pass over the batch's records)."""

    processed: int
    failed: int
    skipped: int

    @classmethod
    def of(cls, result: BatchResult) -> BatchCounts:
        by_action = Counter(o.action for o in result.outcomes)
        return cls(
            processed=sum(by_action[a] for a in WRITTEN_ACTIONS),
            failed=by_action[RecordAction.FAILED],
            skipped=by_action[RecordAction.SKIPPED],
        )

    @property
    def done(self) -> int:
        return self.processed + self.failed + self.skipped

    def control_counters(self, now: dt.datetime) -> dict:
        """The entity run's counters, as an ``update()`` of its control row."""
        return {
            "processed_count": F("processed_count") + self.processed,
            "failed_count": F("failed_count") + self.failed,
            "skipped_count": F("skipped_count") + self.skipped,
            "updated_at": now,
        }


def check_deferred_now(outermost: bool) -> None:
    """Run the deferred foreign-key checks of the control commit now rather than at COMMIT,
    so that the ``control`` stage's time includes them (PostgreSQL). Only in a transaction
    of our own: inside a caller's, the mode would outlive this commit."""
    if outermost and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
