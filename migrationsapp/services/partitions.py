"""Partitions: the upserts of a large entity split into key ranges that several workers run.

After its analysis, an entity with more upsert changes than ``DIFFMIG_PARTITION_ROWS`` gets
one ``MigrationCheckpoint`` per contiguous range of its change set (``AnalysisChange`` ids,
in the order the source returned their rows): unit ``upsert:<i>``, ``checkpoint_data``
``{"lo", "hi"}`` (both included), ``batch_position`` the last change id done (``lo - 1`` at
first). An entity read by key range (services.key_range_baseline) has no change set: its
partitions are ranges of its source's keys, ``lo`` and ``hi`` the places of their rows.
Each partition has its own lease (``lease_owner``/``lease_heartbeat`` on its checkpoint,
services.leases), so N workers share the entity (services.dispatch enqueues every free
partition); its upsert phase is done when every partition is ``completed``. The
``reference: self`` second pass and the deletes then run as for any entity, under the
entity's lease.
"""

from __future__ import annotations

import math
import uuid

from django.conf import settings
from django.db.models import F, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from migrationsapp.engine.outcomes import Phase
from migrationsapp.engine.reads_slices import boundary_json
from migrationsapp.models import AnalysisChange, MigrationCheckpoint
from migrationsapp.models.choices import CheckpointState
from migrationsapp.services.batches import UPSERT_KINDS

PREFIX = f"{Phase.UPSERT}:"


def is_partition(unit: str) -> bool:
    return unit.startswith(PREFIX)


def of_run(run_id: uuid.UUID) -> QuerySet[MigrationCheckpoint]:
    return MigrationCheckpoint.objects.filter(migration_run_id=run_id, unit__startswith=PREFIX)


def of_run_ids(run_ids: list[uuid.UUID]) -> QuerySet[MigrationCheckpoint]:
    return MigrationCheckpoint.objects.filter(migration_run_id__in=run_ids, unit__startswith=PREFIX)


def pending(run_id: uuid.UUID) -> list[MigrationCheckpoint]:
    """The partitions of an entity run still to do, in key order."""
    rows = of_run(run_id).exclude(state=CheckpointState.COMPLETED)
    return sorted(rows, key=lambda p: p.checkpoint_data["lo"])


def all_done(run_id: uuid.UUID) -> bool:
    return not of_run(run_id).exclude(state=CheckpointState.COMPLETED).exists()


def create(*, run_id: uuid.UUID, analysis_id: uuid.UUID, entity: str) -> int:
    """Split the entity's upserts into partitions when they are more than
    ``DIFFMIG_PARTITION_ROWS``; how many (0: one unit, as before). Called in the transaction
    that points the entity run at its change set."""
    size = settings.DIFFMIG_PARTITION_ROWS
    upserts = AnalysisChange.objects.filter(analysis_id=analysis_id, kind__in=UPSERT_KINDS)
    total = upserts.count()
    if size < 1 or total <= size:
        return 0
    count = math.ceil(total / size)
    bounds = _boundaries(upserts, size, total)
    rows = [
        _partition(
            run_id,
            entity,
            index,
            lo=bounds[index * size + 1],
            hi=bounds[min((index + 1) * size, total)],
            rows=min(size, total - index * size),
        )
        for index in range(count)
    ]
    MigrationCheckpoint.objects.bulk_create(rows, ignore_conflicts=True)
    return count


def create_key_ranges(
    *, run_id: uuid.UUID, entity: str, count: int, cuts: list[tuple], every: int
) -> int:
    """The partitions of an entity read by key range (services.key_range_baseline): one per
    range of ``every`` rows between ``cuts``; ``lo`` and ``hi`` the places of its first and
    last rows in the table's key order, ``start`` and ``end`` its keys (``end`` excluded).
    How many (0: one unit)."""
    if not cuts:
        return 0
    bounds = [None, *(boundary_json(cut) for cut in cuts), None]
    rows = []
    for index in range(len(cuts) + 1):
        lo = index * every + 1
        hi = count if index == len(cuts) else (index + 1) * every
        keys = {"start": bounds[index], "end": bounds[index + 1]}
        rows.append(_partition(run_id, entity, index, lo=lo, hi=hi, rows=hi - lo + 1, **keys))
    MigrationCheckpoint.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _partition(
    run_id: uuid.UUID, entity: str, index: int, *, lo: int, hi: int, rows: int, **data: object
) -> MigrationCheckpoint:
    """Partition ``index`` of an entity run, not started: from ``lo`` to ``hi`` (both
    included), ``rows`` to do; ``data`` more of its checkpoint data."""
    return MigrationCheckpoint(
        entity_type=entity,
        migration_run_id=run_id,
        unit=f"{PREFIX}{index}",
        state=CheckpointState.CREATED,
        batch_position=lo - 1,
        records_remaining=max(rows, 0),
        checkpoint_data={
            "phase": Phase.UPSERT,
            "lo": lo,
            "hi": hi,
            **data,
            "last_change_id": lo - 1,
        },
    )


def _boundaries(upserts: QuerySet, size: int, total: int) -> dict[int, int]:
    """The ids at the first and last positions (1-based) of every partition, in one pass
    over the change set (an OFFSET per boundary would read the change set again for each
    of them: quadratic in its size)."""
    numbered = upserts.annotate(position=Window(RowNumber(), order_by=F("id").asc()))
    numbered = numbered.annotate(rest=F("position") % size)
    edges = numbered.filter(Q(rest=1) | Q(rest=0) | Q(position=total))
    return {position: change_id for change_id, position in edges.values_list("id", "position")}


def complete(*, checkpoint_id: uuid.UUID, owner: str) -> bool:
    """Mark a partition done and give its lease back; False when ``owner`` lost it."""
    return (
        MigrationCheckpoint.objects.filter(pk=checkpoint_id, lease_owner=owner).update(
            state=CheckpointState.COMPLETED, lease_owner="", lease_heartbeat=None
        )
        == 1
    )
