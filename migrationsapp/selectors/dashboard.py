"""The dashboard's rows: one per entity of the active mappings, the migration at a glance.

Each row answers what an operator asks in the morning: how many records are migrated, how
many wait in quarantine, how the last run and the last verification went, when the next
scheduled run fires. A handful of grouped queries serve every row (counts by entity), never
one query per cell. An entity never verified reads "never", one no schedule includes "—".
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from django.db.models import Count, Max, QuerySet
from django.utils import timezone

from migrationsapp.models import (
    MigrationControl,
    QuarantinedRecord,
    RecordMap,
    RunSchedule,
    VerifyEntityReport,
)
from migrationsapp.models.choices import ACTIVE_ENTITY_STATES, EntityState
from migrationsapp.models.verify_runs import FINISHED_VERIFY
from migrationsapp.selectors.counts import EntityCounts
from migrationsapp.selectors.definitions import active_definitions
from migrationsapp.selectors.sessions import format_duration


def ago(moment: dt.datetime | None) -> str:
    """How long ago, as people say it: "42 s ago", "3 min 05 s ago", "2 days ago"."""
    if moment is None:
        return ""
    elapsed = timezone.now() - moment
    if elapsed < dt.timedelta(seconds=1):
        return "just now"
    if elapsed >= dt.timedelta(days=2):
        return f"{elapsed.days} days ago"
    return f"{format_duration(elapsed)} ago"


def until(moment: dt.datetime) -> str:
    """How long until: "in 2 h 07 min", "in 3 days", or "due" once it is past."""
    left = moment - timezone.now()
    if left <= dt.timedelta(0):
        return "due"
    if left >= dt.timedelta(days=2):
        return f"in {left.days} days"
    return f"in {format_duration(left)}"


@dataclass(frozen=True)
class LastRun:
    """An entity's latest run: its control row in the newest session that included it."""

    session_id: uuid.UUID
    state: str
    at: dt.datetime | None
    changes: int
    processed: int
    failed: int
    skipped: int
    dry_run: bool
    message: str

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_ENTITY_STATES

    @property
    def ago(self) -> str:
        return ago(self.at)

    @property
    def with_failed(self) -> bool:
        """Completed, yet some records were refused: the counts say what the state does not."""
        return self.state == EntityState.COMPLETED and self.failed > 0


@dataclass(frozen=True)
class LastVerify:
    run_id: uuid.UUID
    state: str
    at: dt.datetime | None
    equal: bool
    differences: int  # missing + extra + records with a different field
    quarantined: int

    @property
    def ago(self) -> str:
        return ago(self.at)


@dataclass(frozen=True)
class NextRun:
    schedule: str
    at: dt.datetime

    @property
    def until(self) -> str:
        return until(self.at)


@dataclass(frozen=True)
class EntityRow:
    entity: str
    migrated: int
    quarantined: int
    last_run: LastRun | None
    last_verify: LastVerify | None
    next_run: NextRun | None

    @property
    def attention(self) -> str:
        """Why this entity needs a look, in a few words; "" when it is healthy."""
        run = self.last_run
        if run is not None and run.state in (EntityState.FAILED, EntityState.BLOCKED):
            return run.message or f"the last run {run.state}"
        if run is not None and run.with_failed:
            return f"{run.failed} record{'s' if run.failed != 1 else ''} failed in the last run"
        if self.last_verify is not None and self.last_verify.differences:
            return "the last verification found differences"
        if self.quarantined:
            return "records wait in quarantine"
        return ""


@dataclass(frozen=True)
class WorkerState:
    """Who executes launched runs: the web process itself, or the workers on the queue."""

    in_process: bool
    workers: int = 0
    queued: int = 0
    error: str = ""

    @property
    def listening(self) -> bool:
        return self.in_process or (not self.error and self.workers > 0)

    @property
    def label(self) -> str:
        if self.in_process:
            return "runs execute in the web process (no job queue)"
        if self.error:
            return f"the job queue is unreachable: {self.error}"
        if not self.workers:
            return "no worker is listening"
        return f"{self.workers} worker{'s' if self.workers != 1 else ''} listening"


def _count_by_entity(rows: QuerySet) -> dict[str, int]:
    """Rows per entity, in one grouped query."""
    counted = rows.values("entity_type").annotate(n=Count("id"))
    return {row["entity_type"]: row["n"] for row in counted}


def _newest_by_entity(rows: QuerySet, *, moment: str, related: str) -> dict[str, Any]:
    """Each entity's row with the latest ``moment`` (a field path such as ``run__created_at``),
    in two queries: the latest moment per entity, then the rows at those moments."""
    newest = rows.values("entity_type").annotate(latest=Max(moment))
    wanted = {(row["entity_type"], row["latest"]) for row in newest}
    if not wanted:
        return {}
    candidates = rows.filter(
        entity_type__in=[entity for entity, _ in wanted],
        **{f"{moment}__in": [latest for _, latest in wanted]},
    ).select_related(related)
    # The second query matches each entity with any entity's latest moment: keep the pairs.
    return {
        row.entity_type: row
        for row in candidates
        if (row.entity_type, reduce(getattr, moment.split("__"), row)) in wanted
    }


def _last_runs(entities: Sequence[str]) -> dict[str, LastRun]:
    """Each entity's control row of its newest session."""
    controls = MigrationControl.objects.filter(entity_type__in=entities)
    return {
        entity: LastRun(
            session_id=control.session_id,
            state=control.state,
            at=control.finished_at or control.started_at or control.created_at,
            changes=EntityCounts.of(control).changes,
            processed=control.processed_count,
            failed=control.failed_count,
            skipped=control.skipped_count,
            dry_run=bool((control.session.options or {}).get("dry_run")),
            message=control.message,
        )
        for entity, control in _newest_by_entity(
            controls, moment="created_at", related="session"
        ).items()
    }


def _last_verifies(entities: Sequence[str]) -> dict[str, LastVerify]:
    """Each entity's report in the newest finished verification that covered it."""
    reports = VerifyEntityReport.objects.filter(
        entity_type__in=entities, run__state__in=FINISHED_VERIFY
    )
    return {
        entity: LastVerify(
            run_id=report.run_id,
            state=report.run.state,
            at=report.run.finished_at,
            equal=report.equal,
            differences=report.missing + report.extra + report.different_records,
            quarantined=report.quarantined,
        )
        for entity, report in _newest_by_entity(
            reports, moment="run__created_at", related="run"
        ).items()
    }


def _next_runs(entities: Sequence[str]) -> dict[str, NextRun]:
    """The soonest tick of an unpaused schedule that includes each entity (empty: all)."""
    out: dict[str, NextRun] = {}
    schedules = RunSchedule.objects.filter(paused=False, next_run_at__isnull=False)
    for schedule in schedules.order_by("next_run_at"):
        for entity in schedule.entities or entities:
            if entity in entities and entity not in out:
                out[entity] = NextRun(schedule=schedule.name, at=schedule.next_run_at)
    return out


def entity_rows() -> list[EntityRow]:
    """One row per entity with an active mapping, in dependency order."""
    entities = [d.entity_type for d in active_definitions()]
    if not entities:
        return []
    migrated = _count_by_entity(
        RecordMap.objects.filter(entity_type__in=entities, deleted_at__isnull=True)
    )
    quarantined = _count_by_entity(
        QuarantinedRecord.objects.filter(entity_type__in=entities, resolved_at__isnull=True)
    )
    runs, verifies, nexts = _last_runs(entities), _last_verifies(entities), _next_runs(entities)
    return [
        EntityRow(
            entity=name,
            migrated=migrated.get(name, 0),
            quarantined=quarantined.get(name, 0),
            last_run=runs.get(name),
            last_verify=verifies.get(name),
            next_run=nexts.get(name),
        )
        for name in entities
    ]


def worker_state(health) -> WorkerState:
    """``selectors.workers.queue_health()``'s answer (None: in-process) as the dashboard says it."""
    if health is None:
        return WorkerState(in_process=True)
    return WorkerState(
        in_process=False, workers=health.workers, queued=health.queued, error=health.error
    )
