"""The runner's ports for ``reference: self`` and ``match_on``, on top of ``ControlRunPorts``.

* ``in_change_set`` and ``keys_of_uuids`` answer the runner's questions during an upsert
  batch (is this self-parent coming in this run? which record already owns this
  destination row?);
* an upsert batch's commit (``ControlRunPorts.commit_batch``) also keeps, in the same
  control transaction, the self-references the batch wrote NULL
  (``AnalysisChange.self_links``), so the second pass survives a crash;
* ``read_links`` / ``commit_links`` serve the second pass (``engine.selfref.SelfLinker``):
  a child whose parent did not make it moves from processed to failed, with its reason,
  its quarantine entry and a cleared record-map hash (so the next run tries it again);
* both commits measure their own time (the ``control`` stage, engine.stages) and add the
  batch's stage seconds to its unit's checkpoint (``checkpoint_data["timing"]``) as their
  last statement, in the same transaction: a batch counts exactly when its checkpoint moves.

``run_link_phase`` and ``unlink_for_deletes`` are the two steps ``services.runs`` adds
around an entity's upserts and deletes when it has a self reference.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from migrationsapp.engine.batch_loop import UnitOutcome
from migrationsapp.engine.outcomes import Phase, RecordAction
from migrationsapp.engine.ports import BatchResult, FaultHook, LinkBatchResult, PendingLink
from migrationsapp.engine.runner import EntityRunner
from migrationsapp.engine.selfref import SelfLinker, self_reference_columns, unlink_before_deletes
from migrationsapp.engine.stages import StageTotals, clock
from migrationsapp.models import (
    AnalysisChange,
    MigrationCheckpoint,
    MigrationControl,
    MigrationStatus,
    RecordMap,
)
from migrationsapp.models.choices import AuditAction, CheckpointState, OperationType
from migrationsapp.selectors.stages import TIMING
from migrationsapp.services.batch_logs import log_failed_records
from migrationsapp.services.batch_quarantine import write_quarantine
from migrationsapp.services.batches import (
    CHUNK,
    UPSERT_KINDS,
    ControlRunPorts,
    check_deferred_now,
)
from migrationsapp.services.key_probes import probe_keys, probe_select
from migrationsapp.services.logs import log_event
from migrationsapp.services.record_writes import write_events


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


class EntityRunPorts(ControlRunPorts):
    """``ControlRunPorts`` plus what self references and adoption need."""

    # -- questions of an upsert batch ------------------------------------------------------

    def in_change_set(self, key_texts: Collection[str]) -> set[str]:
        if connection.vendor == "postgresql":
            kinds = ", ".join(f"'{k}'" for k in UPSERT_KINDS)  # the enum's own values
            rows = self._probe(
                AnalysisChange._meta.db_table,
                "t.legacy_key_text",
                list(key_texts),
                scope_column="analysis_id",
                scope=self.analysis_id,
                key_column="legacy_key_text",
                where=f"AND kind IN ({kinds})",
            )
            return {text for (text,) in rows}
        found: set[str] = set()
        for chunk in _chunks(list(key_texts)):
            found.update(
                AnalysisChange.objects.filter(
                    analysis_id=self.analysis_id, kind__in=UPSERT_KINDS, legacy_key_text__in=chunk
                ).values_list("legacy_key_text", flat=True)
            )
        return found

    def keys_of_uuids(self, entity: str, uuids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
        if connection.vendor == "postgresql":
            rows = self._probe(
                RecordMap._meta.db_table,
                "t.destination_uuid, t.legacy_key_text",
                list(uuids),
                scope_column="entity_type",
                scope=entity,
                key_column="destination_uuid",
            )
            return dict(rows)
        found: dict[uuid.UUID, str] = {}
        for chunk in _chunks(list(uuids)):
            found.update(
                RecordMap.objects.filter(
                    entity_type=entity, destination_uuid__in=chunk
                ).values_list("destination_uuid", "legacy_key_text")
            )
        return found

    @staticmethod
    def _probe(
        table: str,
        columns: str,
        keys: list,
        *,
        scope_column: str,
        scope: object,
        key_column: str,
        where: str = "",
    ) -> list[tuple]:
        """One index probe per key (services.key_probes)."""
        key_type = "uuid" if key_column == "destination_uuid" else "text"
        sql = probe_select(
            table,
            columns,
            scope_column=scope_column,
            key_column=key_column,
            key_type=key_type,
            where=where,
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [probe_keys(keys, key_type), scope])
            return cursor.fetchall()

    # -- the upsert batch's commit, with the links it left for the second pass ------------

    def _write_batch_extras(self, result: BatchResult) -> None:
        self._write_links(result)

    def _write_links(self, result: BatchResult) -> None:
        written = (RecordAction.CREATED, RecordAction.UPDATED)  # deletes keep no links
        rows = [
            AnalysisChange(
                id=o.change_id, self_links={"uuid": str(o.uuid), "columns": dict(o.links)}
            )
            for o in result.outcomes
            if o.links and o.change_id is not None and o.action in written
        ]
        AnalysisChange.objects.bulk_update(rows, ["self_links"], batch_size=CHUNK)

    # -- the second pass -------------------------------------------------------------------

    def read_links(self, *, after_id: int, limit: int) -> list[PendingLink]:
        rows = (
            AnalysisChange.objects.filter(
                analysis_id=self.analysis_id, id__gt=after_id, self_links__isnull=False
            )
            .order_by("id")
            .values_list("id", "legacy_key", "legacy_key_text", "content_hash", "self_links")[
                :limit
            ]
        )
        return [
            PendingLink(
                change_id=change_id,
                key=list(key),
                key_text=key_text,
                content_hash=content_hash,
                uuid=uuid.UUID(links["uuid"]),
                columns=dict(links["columns"]),
            )
            for change_id, key, key_text, content_hash, links in rows
        ]

    def commit_links(self, result: LinkBatchResult) -> None:
        began = clock()
        outermost = not connection.in_atomic_block
        now = timezone.now()
        failed = result.failures
        scope = self.scope
        with transaction.atomic():
            # The second pass runs under the entity's own lease (never a partition's).
            self._check_lease(now)
            if failed:
                write_events(scope, failed, now)
                write_quarantine(scope, failed, now)
                # The row is written but incomplete: a cleared hash makes the next analysis
                # select it again (as retry while the source row stays the same).
                keys = [o.key_text for o in failed]
                for chunk in _chunks(keys):
                    RecordMap.objects.filter(
                        entity_type=self.entity, legacy_key_text__in=chunk
                    ).update(content_hash="")
                # Counted as processed by its upsert batch; it is a failure after all.
                MigrationControl.objects.filter(pk=self.control_id).update(
                    processed_count=Greatest(F("processed_count") - len(failed), 0),
                    failed_count=F("failed_count") + len(failed),
                    updated_at=now,
                )
                MigrationStatus.objects.filter(migration_session_id=self.session_id).update(
                    total_records_processed=Greatest(F("total_records_processed") - len(failed), 0),
                    updated_at=now,
                )
                log_failed_records(scope, failed)
            log_event(
                session_id=self.session_id,
                entity=self.entity,
                operation=OperationType.CHECKPOINT_SAVE,
                message=f"{self.entity}: second pass (reference: self): {result.linked} linked, "
                f"{len(failed)} failed",
                performance_data={"rows": result.linked, "seconds": round(result.seconds, 4)},
                context={"phase": Phase.LINK, "last_change_id": result.last_change_id},
                action=AuditAction.ENTITY_LINKS_SET,
            )
            checkpoint, _ = MigrationCheckpoint.objects.get_or_create(
                migration_run_id=self.run_id,
                unit=Phase.LINK,
                defaults={"entity_type": self.entity, "state": CheckpointState.ACTIVE},
            )
            check_deferred_now(outermost)
            seconds = result.close_control(commit_began=began)
            # Under the lease checked above: this unit's row, read and written back.
            totals = StageTotals.from_json((checkpoint.checkpoint_data or {}).get(TIMING))
            totals.add_batch(result.stages, seconds)
            MigrationCheckpoint.objects.filter(pk=checkpoint.pk).update(
                state=CheckpointState.ACTIVE,
                last_processed_id=str(result.last_change_id),
                batch_position=result.last_change_id,
                records_processed=F("records_processed") + result.linked + len(failed),
                checkpoint_data={
                    "phase": Phase.LINK,
                    "last_change_id": result.last_change_id,
                    TIMING: totals.to_json(),
                },
                updated_at=now,
            )


def checkpoint_position(control: MigrationControl, unit: str) -> int:
    """The last change id an entity run's unit (upsert, delete, link, upsert:<i>) has done."""
    return (
        MigrationCheckpoint.objects.filter(migration_run_id=control.run_id, unit=unit)
        .values_list("batch_position", flat=True)
        .first()
    ) or 0


def run_link_phase(
    *, control: MigrationControl, runner: EntityRunner, fault: FaultHook | None = None
) -> UnitOutcome | None:
    """The second pass of an entity with `reference: self` (None when it has none)."""
    columns = self_reference_columns(runner.compiled)
    if not columns or runner.dry_run:
        return None
    MigrationControl.objects.filter(pk=control.pk).update(phase=Phase.LINK)
    linker = SelfLinker(
        entity=runner.entity,
        writer=runner.writer,
        ports=runner.ports,
        batch_size=runner.batch_size,
        fault=fault,
    )
    return linker.run(after_id=checkpoint_position(control, Phase.LINK))


def unlink_for_deletes(*, control: MigrationControl, runner: EntityRunner) -> int:
    """Before hard deletes: NULL the self references of the rows about to go."""
    columns = self_reference_columns(runner.compiled)
    if not columns or runner.dry_run or runner.compiled.spec.deletes != "hard":
        return 0
    return unlink_before_deletes(
        entity=runner.entity,
        columns=columns,
        writer=runner.writer,
        ports=runner.ports,
        after_id=checkpoint_position(control, Phase.DELETE),
        batch_size=runner.batch_size,
    )
