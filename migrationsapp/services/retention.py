"""The retention policy behind `diffmig cleanup`: what the control database forgets, and when.

* the execution log and the record events: 90 days (by their own time);
* the checkpoints of finished sessions (completed, failed, cancelled): 30 days after the
  session finished;
* analyses with their change sets: 30 days after the analysis, unless a session that is
  not finished (pending, running, paused) still reads its change set;
* sessions and their entity runs (the status), the record map and the quarantine: kept.
* the stage of an analysis that stopped half-way and will not resume (its session
  finished, or none and idle for a day): dropped with that analysis.

Every table is emptied in bounded batches of primary keys (``DELETE … WHERE id IN (…)`` of at
most ``batch_size`` rows, each in its own short transaction), never by one unbounded DELETE
that would lock a table of millions of rows for minutes. ``now`` is a parameter so that a
test can place rows at chosen ages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from migrationsapp.models import (
    AnalysisChange,
    DifferentialAnalysisResult,
    MigrationCheckpoint,
    MigrationControl,
    MigrationExecutionLog,
    RecordEvent,
)
from migrationsapp.models.choices import SessionStatus
from migrationsapp.services.analysis_slices import drop_stale_stages

LOG_DAYS = 90
CHECKPOINT_DAYS = 30
ANALYSIS_DAYS = 30
BATCH_SIZE = 10_000
# The report's name for the stage tables of unfinished analyses (one table each) it drops.
STAGES = "diffmig_stage_*"

FINISHED = (SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.CANCELLED)


@dataclass
class RetentionReport:
    """Rows deleted (or, in a dry run, that would be) per table, in the order they go."""

    dry_run: bool
    now: dt.datetime
    deleted: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def expired_logs(now: dt.datetime) -> QuerySet[MigrationExecutionLog]:
    return MigrationExecutionLog.objects.filter(timestamp__lt=now - dt.timedelta(days=LOG_DAYS))


def expired_events(now: dt.datetime) -> QuerySet[RecordEvent]:
    return RecordEvent.objects.filter(occurred_at__lt=now - dt.timedelta(days=LOG_DAYS))


def expired_checkpoints(now: dt.datetime) -> QuerySet[MigrationCheckpoint]:
    return MigrationCheckpoint.objects.filter(
        migration_run__session__overall_status__in=FINISHED,
        migration_run__session__completed_at__lt=now - dt.timedelta(days=CHECKPOINT_DAYS),
    )


def expired_analyses(now: dt.datetime) -> QuerySet[DifferentialAnalysisResult]:
    # A paused session resumes from its change set, however old: keep what it reads.
    in_use = MigrationControl.objects.filter(analysis__isnull=False).exclude(
        session__overall_status__in=FINISHED
    )
    return DifferentialAnalysisResult.objects.filter(
        analysis_timestamp__lt=now - dt.timedelta(days=ANALYSIS_DAYS)
    ).exclude(pk__in=in_use.values("analysis_id"))


def apply_retention(
    *, now: dt.datetime | None = None, dry_run: bool = False, batch_size: int = BATCH_SIZE
) -> RetentionReport:
    """Delete what the policy no longer keeps (or only count it, with ``dry_run``)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = now or timezone.now()
    report = RetentionReport(dry_run=dry_run, now=now)
    analyses = expired_analyses(now)
    steps: list[tuple[type[Model], QuerySet]] = [
        (MigrationExecutionLog, expired_logs(now)),
        (RecordEvent, expired_events(now)),
        (MigrationCheckpoint, expired_checkpoints(now)),
        # The change sets first, in batches of their own: the analyses' cascade would
        # otherwise delete millions of change rows in one statement.
        (AnalysisChange, AnalysisChange.objects.filter(analysis__in=analyses.values("pk"))),
        (DifferentialAnalysisResult, analyses),
    ]
    for model, queryset in steps:
        table = model._meta.db_table
        if dry_run:
            report.deleted[table] = queryset.count()
        else:
            report.deleted[table] = delete_in_batches(queryset, batch_size=batch_size)
    # The stages of sliced analyses that nothing will resume (services.analysis_slices).
    report.deleted[STAGES] = drop_stale_stages(now=now, dry_run=dry_run)
    return report


def delete_in_batches(queryset: QuerySet, *, batch_size: int = BATCH_SIZE) -> int:
    """Delete the rows of ``queryset`` by primary key, ``batch_size`` at a time; returns how many.

    The query is evaluated again for every batch, so rows that stop matching meanwhile (an
    analysis a resumed session now reads) are left alone.
    """
    model = queryset.model
    total = 0
    while True:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return total
        with transaction.atomic():
            # Models without dependants go in one DELETE … WHERE pk IN (…); an analysis also
            # clears the (finished) entity runs' reference to it (ON DELETE SET NULL).
            model._base_manager.filter(pk__in=ids).delete()
        total += len(ids)
        if len(ids) < batch_size:
            return total
