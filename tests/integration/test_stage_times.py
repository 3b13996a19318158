"""Time per stage: every batch records its read, transform, validate, write and control
seconds with its checkpoint; `status --json` and the session page show them.

Runs of the demo clinic (SQLite legacy and destination) in this process, on the control
database under test. No timing is asserted: only that the numbers exist, that they are the
batches' (one record per batch, a dry run writes for 0 s), and the invariant that disjoint
parts of a batch never add up to more than its wall time.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from migrationsapp.engine.stages import STAGES
from migrationsapp.models import MigrationCheckpoint, MigrationExecutionLog, MigrationStatus
from migrationsapp.models.choices import OperationType, SessionStatus
from migrationsapp.services.runs import RunOptions, run_session
from tests.factories import MigrationStatusFactory
from tests.integration.conftest import cli
from tests.support.sqlite_clinic import build_sqlite_clinic

pytestmark = pytest.mark.embedded

CLINIC = ["office", "doctor", "patient", "appointment"]
# Each value of the document is rounded to 6 decimals: a sum of six of them may be off by this.
ROUNDING = 1e-5


@pytest.fixture
def clinic(tmp_path, settings, monkeypatch):
    settings.DIFFMIG_SQLITE_ROOT = tmp_path
    settings.REDIS_URL = None  # runs execute in this process
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", "")
    monkeypatch.setenv("DIFFMIG_TARGET_URL", "")
    return build_sqlite_clinic(tmp_path)


def status_document(session: MigrationStatus) -> dict:
    result = cli("status", str(session.migration_session_id), "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def batch_log_lines(session: MigrationStatus) -> int:
    """The log's line per committed batch (upserts, deletes, the second pass)."""
    return MigrationExecutionLog.objects.filter(
        session_id=session.migration_session_id,
        operation_type=OperationType.CHECKPOINT_SAVE,
        performance_data__has_key="rows",
    ).count()


def recorded_batches(session: MigrationStatus) -> int:
    return sum(
        (data.get("timing") or {}).get("batches", 0)
        for data in MigrationCheckpoint.objects.filter(
            migration_run__session_id=session.migration_session_id
        ).values_list("checkpoint_data", flat=True)
    )


def assert_stage_keys(totals: dict) -> None:
    assert set(totals["stages"]) == set(STAGES)
    assert all(seconds >= 0 for seconds in totals["stages"].values())
    assert sum(totals["stages"].values()) <= totals["batch_seconds"] + ROUNDING


@pytest.mark.django_db(transaction=True)
def test_status_json_gives_each_entitys_seconds_per_stage_within_its_batches_time(clinic):
    baseline = run_session(options=RunOptions(batch_size=40))
    deleted = clinic.delete_appointments(5)
    session = run_session(options=RunOptions(batch_size=40, baseline=True))
    assert (baseline.overall_status, session.overall_status) == ("completed", "completed")

    document = status_document(session)

    entities = document["entities"]
    assert list(entities) == CLINIC
    for name in CLINIC:
        assert_stage_keys(entities[name])
        assert entities[name]["batch_seconds"] > 0
    assert entities["appointment"]["deleted"] == deleted
    totals = document["session"]
    assert_stage_keys(totals)
    for stage in STAGES:
        summed = sum(entities[name]["stages"][stage] for name in CLINIC)
        assert abs(totals["stages"][stage] - summed) <= ROUNDING
    assert abs(totals["batch_seconds"] - sum(e["batch_seconds"] for e in entities.values())) <= (
        ROUNDING
    )
    # One record per committed batch, upserts and deletes alike: as many as the log's lines.
    assert recorded_batches(session) == batch_log_lines(session) > len(CLINIC)

    human = cli("status", str(session.migration_session_id))
    line = next(x for x in human.out.splitlines() if x.startswith("stages: "))
    assert line.startswith("stages: read ")
    assert ", control " in line and "(slowest: " in line


@pytest.mark.django_db(transaction=True)
def test_a_dry_run_spends_no_time_writing_the_destination(clinic):
    session = run_session(options=RunOptions(batch_size=100, dry_run=True))
    assert session.overall_status == SessionStatus.COMPLETED

    document = status_document(session)

    for name in CLINIC:
        assert_stage_keys(document["entities"][name])
        assert document["entities"][name]["stages"]["write"] == 0.0
    assert document["session"]["stages"]["write"] == 0.0
    assert document["session"]["stages"]["control"] > 0


@pytest.mark.django_db(transaction=True)
def test_an_ended_sessions_stage_times_outlive_its_checkpoints(clinic):
    session = run_session(options=RunOptions(batch_size=100))
    before = status_document(session)

    # Retention removes a finished session's checkpoints after 30 days.
    MigrationCheckpoint.objects.filter(
        migration_run__session_id=session.migration_session_id
    ).delete()
    after = status_document(session)

    assert after["session"]["stages"] == before["session"]["stages"]
    assert after["session"]["batch_seconds"] == before["session"]["batch_seconds"]
    assert {n: e["stages"] for n, e in after["entities"].items()} == {
        n: e["stages"] for n, e in before["entities"].items()
    }


@pytest.mark.django_db(transaction=True)
def test_the_session_page_shows_the_time_per_stage(clinic, auditor_client):
    session = run_session(options=RunOptions(batch_size=100))
    stages = status_document(session)["session"]["stages"]

    response = auditor_client.get(reverse("runs:session", args=[session.migration_session_id]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Time per stage" in html
    for name in [*CLINIC, "Session"]:
        assert f'<tr class="stage-row" data-name="{name}">' in html
    for stage in STAGES:
        assert html.count(f'data-stage="{stage}"') == len(CLINIC) + 1
        assert f'class="stage-{stage}"' in html
    slowest = max(stages, key=stages.__getitem__)
    assert f'<strong id="slowest-stage">{slowest}</strong>' in html


@pytest.mark.django_db
def test_the_session_page_of_a_session_without_stage_times_still_renders(auditor_client):
    # A session that ended before stage times were recorded: no checkpoints, no copy.
    session = MigrationStatusFactory(overall_status=SessionStatus.COMPLETED)

    response = auditor_client.get(reverse("runs:session", args=[session.migration_session_id]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "No stage times recorded for this session." in html
    assert 'class="stage-row"' not in html
    document = status_document(session)
    assert document["session"]["stages"] == dict.fromkeys(STAGES, 0.0)
    assert document["session"]["batch_seconds"] == 0.0
