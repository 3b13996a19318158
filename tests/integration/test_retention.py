"""`diffmig cleanup`: the retention policy removes exactly what it says, and nothing else.

Rows are placed at chosen ages around each limit (89/91 days for logs and record events,
29/31 days for checkpoints and analyses) relative to an explicit ``now``.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from migrationsapp.models import (
    AnalysisChange,
    DifferentialAnalysisResult,
    MigrationCheckpoint,
    MigrationControl,
    MigrationExecutionLog,
    MigrationStatus,
    QuarantinedRecord,
    RecordEvent,
    RecordMap,
)
from migrationsapp.models.choices import EntityState, SessionStatus
from migrationsapp.services.retention import apply_retention
from tests.factories import (
    AnalysisChangeFactory,
    DifferentialAnalysisResultFactory,
    MigrationCheckpointFactory,
    MigrationControlFactory,
    MigrationExecutionLogFactory,
    MigrationStatusFactory,
    QuarantinedRecordFactory,
    RecordEventFactory,
    RecordMapFactory,
)
from tests.integration.conftest import cli
from tests.support.stages import no_stages_left  # noqa: F401 (fixture)

# Stages are counted: none left by another module's tests may be.
pytestmark = [
    pytest.mark.services,
    pytest.mark.embedded,
    pytest.mark.django_db,
    pytest.mark.usefixtures("no_stages_left"),
]

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def ids(model) -> set:
    return set(model.objects.values_list("pk", flat=True))


def session(status: str, finished_days_ago: float | None) -> MigrationStatus:
    finished = None if finished_days_ago is None else days_ago(finished_days_ago)
    return MigrationStatusFactory(overall_status=status, completed_at=finished)


def checkpoint(of: MigrationStatus, state: str) -> MigrationCheckpoint:
    run = MigrationControlFactory(session=of, state=state)
    return MigrationCheckpointFactory(migration_run=run)


def analysis(age_days: float, changes: int, *, read_by: MigrationStatus | None = None):
    result = DifferentialAnalysisResultFactory(analysis_timestamp=days_ago(age_days))
    AnalysisChangeFactory.create_batch(changes, analysis=result)
    if read_by is not None:
        state = EntityState.PAUSED if read_by.overall_status == "paused" else EntityState.COMPLETED
        MigrationControlFactory(session=read_by, state=state, analysis=result)
    return result


@pytest.fixture
def aged_rows():
    """Rows on both sides of every limit; returns the primary keys that must go."""
    completed_long_ago = session(SessionStatus.COMPLETED, 31)
    failed_long_ago = session(SessionStatus.FAILED, 45)
    cancelled_long_ago = session(SessionStatus.CANCELLED, 400)
    completed_lately = session(SessionStatus.COMPLETED, 29)
    paused_long_ago = session(SessionStatus.PAUSED, None)  # may resume: its state stays
    running = session(SessionStatus.RUNNING, None)

    old_logs = [
        MigrationExecutionLogFactory(session=completed_long_ago, timestamp=days_ago(d))
        for d in (91, 120, 365)
    ]
    for d in (89, 1):
        MigrationExecutionLogFactory(session=completed_long_ago, timestamp=days_ago(d))
    MigrationExecutionLogFactory(session=None, timestamp=days_ago(30))
    old_logs.append(MigrationExecutionLogFactory(session=None, timestamp=days_ago(100)))

    old_events = [
        RecordEventFactory(session=completed_long_ago, occurred_at=days_ago(d)) for d in (91, 200)
    ]
    for d in (89, 10):
        RecordEventFactory(session=completed_long_ago, occurred_at=days_ago(d))

    old_checkpoints = [
        checkpoint(completed_long_ago, EntityState.COMPLETED),
        checkpoint(failed_long_ago, EntityState.FAILED),
        checkpoint(cancelled_long_ago, EntityState.CANCELLED),
    ]
    checkpoint(completed_lately, EntityState.COMPLETED)
    checkpoint(paused_long_ago, EntityState.PAUSED)
    checkpoint(running, EntityState.RUNNING)

    old_analyses = [
        analysis(31, 3),
        analysis(45, 2, read_by=completed_long_ago),  # a finished session's: goes
    ]
    analysis(29, 2)
    analysis(60, 4, read_by=paused_long_ago)  # a paused session resumes from it: stays
    old_changes = AnalysisChange.objects.filter(analysis__in=old_analyses)

    # Never touched by the policy.
    RecordMapFactory.create_batch(2)
    QuarantinedRecordFactory(first_seen_at=days_ago(500), last_seen_at=days_ago(400))
    return {
        MigrationExecutionLog: {row.pk for row in old_logs},
        RecordEvent: {row.pk for row in old_events},
        MigrationCheckpoint: {row.pk for row in old_checkpoints},
        AnalysisChange: set(old_changes.values_list("pk", flat=True)),
        DifferentialAnalysisResult: {row.pk for row in old_analyses},
    }


EXPECTED_COUNTS = {
    "migration_execution_logs": 4,
    "migration_record_events": 2,
    "migration_checkpoints": 3,
    "differential_analysis_changes": 5,
    "differential_analysis_results": 2,
    "diffmig_stage_*": 0,
}
KEPT_MODELS = (MigrationStatus, MigrationControl, RecordMap, QuarantinedRecord)


def test_dry_run_counts_what_the_policy_removes_and_deletes_nothing(aged_rows):
    before = {model: ids(model) for model in (*aged_rows, *KEPT_MODELS)}

    report = apply_retention(now=NOW, dry_run=True)

    assert report.deleted == EXPECTED_COUNTS
    assert {model: ids(model) for model in before} == before


def test_cleanup_removes_exactly_what_the_policy_says_in_bounded_batches(aged_rows):
    before = {model: ids(model) for model in (*aged_rows, *KEPT_MODELS)}

    # Batches of 2 rows: every table needs several rounds.
    report = apply_retention(now=NOW, batch_size=2)

    assert report.deleted == EXPECTED_COUNTS
    for model, gone in aged_rows.items():
        assert gone <= before[model]
        assert ids(model) == before[model] - gone, model.__name__
    for model in KEPT_MODELS:
        assert ids(model) == before[model], model.__name__
    # The finished session's entity run forgets the analysis it read; the paused one keeps it.
    assert MigrationControl.objects.filter(analysis__isnull=False).count() == 1
    assert apply_retention(now=NOW).total == 0  # nothing left to do


LOGS = "migration_execution_logs"


def printed_counts(out: str) -> dict[str, int]:
    rows = [line.split() for line in out.splitlines()]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[0] in EXPECTED_COUNTS}


def test_cleanup_command_prints_the_counts_per_table(db):
    old = timezone.now() - dt.timedelta(days=100)
    MigrationExecutionLogFactory.create_batch(3, timestamp=old)
    MigrationExecutionLogFactory(timestamp=timezone.now())

    dry = cli("cleanup", "--dry-run")
    assert dry.code == 0, dry.err
    assert printed_counts(dry.out) == {**dict.fromkeys(EXPECTED_COUNTS, 0), LOGS: 3}
    assert "3 rows would be deleted (dry run: nothing was deleted)" in dry.out
    assert MigrationExecutionLog.objects.count() == 4

    done = cli("cleanup")
    assert done.code == 0, done.err
    assert printed_counts(done.out) == {**dict.fromkeys(EXPECTED_COUNTS, 0), LOGS: 3}
    assert "3 rows deleted" in done.out
    assert MigrationExecutionLog.objects.count() == 1
