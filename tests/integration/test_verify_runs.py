"""Verify in the web: launched from the history page or a completed session's "verify now",
executed as the executor does (here in the test's thread: the after-commit hand-over is
captured), stored per entity, shown on the report page with its badges and examples.

The legacy clinic and its destination are SQLite files (tests.support.sqlite_clinic); a
difference is planted directly in the destination after a baseline.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from django.urls import reverse

from migrationsapp.models import VerifyEntityReport, VerifyRun
from migrationsapp.models.choices import SessionStatus
from migrationsapp.models.verify_runs import VerifyState
from migrationsapp.services.runs import RunOptions, run_session
from migrationsapp.services.verify_runs import execute_verify_run, run_verify_runs
from tests.factories import MigrationStatusFactory
from tests.support.reliability import record
from tests.support.sqlite_clinic import build_sqlite_clinic

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

CLINIC = ["office", "doctor", "patient", "appointment"]


@pytest.fixture
def clinic(tmp_path, settings, monkeypatch):
    settings.DIFFMIG_SQLITE_ROOT = tmp_path
    settings.REDIS_URL = None
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", "")
    monkeypatch.setenv("DIFFMIG_TARGET_URL", "")
    return build_sqlite_clinic(tmp_path)


@pytest.fixture
def migrated(clinic):
    session = run_session(options=RunOptions(baseline=True, batch_size=200), user="tests")
    assert session.overall_status == SessionStatus.COMPLETED
    return session


def launch(client, django_capture_on_commit_callbacks, **data) -> VerifyRun:
    """POST the launch; the executor's hand-over is captured, the run executed here."""
    with django_capture_on_commit_callbacks(execute=False) as handed_over:
        response = client.post(reverse("verify:launch"), data)
    run = VerifyRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("verify:report", kwargs={"run_id": run.id})
    assert len(handed_over) == 1  # one thread (or one job) per launch
    assert run.state == VerifyState.PENDING
    return execute_verify_run(run_id=run.id)


def test_verify_now_on_a_completed_session_stores_an_equal_report_per_entity(
    operator_client, migrated, django_capture_on_commit_callbacks
):
    page = operator_client.get(reverse("runs:session", args=[migrated.migration_session_id]))
    assert 'name="verify_now"' in page.content.decode()

    run = launch(
        operator_client,
        django_capture_on_commit_callbacks,
        session=str(migrated.migration_session_id),
    )

    assert run.state == VerifyState.EQUAL
    assert run.session_id == migrated.migration_session_id
    assert run.launched_by == "operator"
    reports = list(run.reports.order_by("position"))
    assert [r.entity_type for r in reports] == CLINIC
    assert all(r.equal for r in reports)
    assert [r.missing + r.extra + r.different for r in reports] == [0, 0, 0, 0]
    assert all(r.compared > 0 for r in reports)
    assert reports[0].report["counts"]["compared"] == reports[0].compared
    html = operator_client.get(reverse("verify:report", args=[run.id])).content.decode()
    assert html.count('data-state="equal"') == 5  # the run and its four entities
    assert 'hx-trigger="every 1s"' not in html  # finished: no polling


def test_a_planted_difference_is_a_mismatch_with_its_example_on_the_report(
    operator_client, auditor_client, clinic, migrated, django_capture_on_commit_callbacks
):
    target = sa.create_engine(clinic.target_url)
    with target.begin() as conn:
        legacy_id = conn.execute(sa.text("SELECT min(legacy_id) FROM office")).scalar_one()
        conn.execute(
            sa.text("UPDATE office SET name = 'Planted name' WHERE legacy_id = :k"),
            {"k": legacy_id},
        )
        conn.execute(
            sa.text("DELETE FROM appointment WHERE rowid IN (SELECT min(rowid) FROM appointment)")
        )
    target.dispose()

    run = launch(
        operator_client, django_capture_on_commit_callbacks, entities=["office", "appointment"]
    )

    assert run.state == VerifyState.MISMATCH
    office = VerifyEntityReport.objects.get(run=run, entity_type="office")
    assert (office.equal, office.different, office.different_records) == (False, 1, 1)
    assert office.report["different"] == [
        {
            "key": str(legacy_id),
            "field": "name",
            "source": office.report["different"][0]["source"],
            "destination": "Planted name",
        }
    ]
    appointment = VerifyEntityReport.objects.get(run=run, entity_type="appointment")
    assert (appointment.equal, appointment.missing, appointment.extra) == (False, 1, 0)
    # The auditor reads the report: badges, the example with both values, the missing key.
    html = auditor_client.get(reverse("verify:report", args=[run.id])).content.decode()
    assert 'data-state="mismatch"' in html
    assert "differences found" in html
    assert "Planted name" in html and office.report["different"][0]["source"] in html
    assert f"<code>{appointment.report['missing'][0]}</code>" in html
    history = auditor_client.get(reverse("verify:list")).content.decode()
    assert f'data-verify="{run.id}"' in history
    assert "<td>office, appointment</td>" in history  # where it differed
    assert 'name="verify"' not in history  # no launch form for an auditor
    record(
        "web",
        "verify report of planted differences (changed field, deleted destination row)",
        tried=2,
        held=2,
        outcome="each is a mismatch of its entity, with the key and both values on the report",
    )


def test_a_verification_without_an_active_mapping_is_refused_and_stores_nothing(
    operator_client, settings
):
    settings.REDIS_URL = None
    response = operator_client.post(reverse("verify:launch"), {}, follow=True)
    assert response.status_code == 200
    assert "there is no active mapping to verify" in response.content.decode()
    assert VerifyRun.objects.count() == 0


def test_an_unknown_entity_is_refused_by_name(operator_client, clinic):
    response = operator_client.post(reverse("verify:launch"), {"entities": ["nurse"]}, follow=True)
    assert "no active mapping for nurse (active: office, doctor, patient, appointment)" in (
        response.content.decode()
    )
    assert VerifyRun.objects.count() == 0


def test_a_second_copy_of_the_job_neither_runs_nor_stores_twice(
    operator_client, migrated, django_capture_on_commit_callbacks
):
    run = launch(operator_client, django_capture_on_commit_callbacks, entities=["office"])
    assert run.state == VerifyState.EQUAL
    again = execute_verify_run(run_id=run.id)
    assert again.state == VerifyState.EQUAL and again.finished_at == run.finished_at
    assert run_verify_runs() == []
    assert VerifyEntityReport.objects.filter(run=run).count() == 1


def test_a_verification_whose_destination_is_gone_ends_failed_with_the_reason(
    operator_client, clinic, django_capture_on_commit_callbacks
):
    os.remove(clinic.target_url.removeprefix("sqlite:///"))
    run = launch(operator_client, django_capture_on_commit_callbacks)
    assert run.state == VerifyState.FAILED
    assert run.error != ""
    assert run.reports.count() == 0
    html = operator_client.get(reverse("verify:report", args=[run.id])).content.decode()
    assert 'data-state="failed"' in html and 'role="alert"' in html


def test_a_pending_report_polls_until_the_run_has_ended(auditor_client, operator):
    run = VerifyRun.objects.create(launched_by="operator")
    page = auditor_client.get(reverse("verify:report", args=[run.id]))
    assert 'hx-trigger="every 1s"' in page.content.decode()
    fragment = auditor_client.get(reverse("verify:report", args=[run.id]), HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    VerifyRun.objects.filter(pk=run.pk).update(state=VerifyState.EQUAL)
    done = auditor_client.get(reverse("verify:report", args=[run.id]), HTTP_HX_REQUEST="true")
    assert done.status_code == 286
    assert "<html" not in done.content.decode()


def test_only_a_completed_session_offers_verify_now(operator_client, auditor_client):
    running = MigrationStatusFactory(overall_status=SessionStatus.RUNNING)
    completed = MigrationStatusFactory(overall_status=SessionStatus.COMPLETED)
    url = reverse("runs:session", args=[running.migration_session_id])
    assert 'name="verify_now"' not in operator_client.get(url).content.decode()
    url = reverse("runs:session", args=[completed.migration_session_id])
    assert 'name="verify_now"' in operator_client.get(url).content.decode()
    assert 'name="verify_now"' not in auditor_client.get(url).content.decode()
