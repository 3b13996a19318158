"""The runs pages in a real browser: log in, launch the clinic after its analysis, watch it
complete without a reload, pause and resume it; an auditor sees no launch.

"Without a reload" is checked by a mark left on the page's window object: a navigation or a
reload would clear it. The run executes in a thread of the live server against a SQLite
legacy clinic and destination under the test's own directory.
"""

from __future__ import annotations

import re
import time

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from migrationsapp.models import MigrationStatus
from migrationsapp.models.choices import SessionStatus
from migrationsapp.services.runs import RunOptions, execute_session, launch_session
from tests.factories import MigrationControlFactory, MigrationStatusFactory
from tests.support.sqlite_clinic import build_sqlite_clinic

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SESSION_URL = re.compile(r"/sessions/([0-9a-f-]{36})/$")
# The clinic plants bad rows: its runs complete with failed records, and say so.
COMPLETED = re.compile(r"^completed( with \d+ failed)?$")


@pytest.fixture
def clinic(tmp_path, settings, monkeypatch):
    if connection.vendor == "sqlite":
        pytest.skip(
            "a run from the browser writes from its own thread while the live server reads: "
            "the in-memory SQLite test database locks whole tables; use PostgreSQL"
        )
    settings.DIFFMIG_SQLITE_ROOT = tmp_path
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", "")
    monkeypatch.setenv("DIFFMIG_TARGET_URL", "")
    return lambda scale=1: build_sqlite_clinic(tmp_path, scale=scale)


def mark_window(page) -> None:
    page.evaluate("window.__diffmigNoReload = true")


def window_still_marked(page) -> bool:
    return page.evaluate("window.__diffmigNoReload === true")


def status_badge(page):
    return page.locator("#session-status .badge")


def launch_from_dashboard(page, *, batch_size: int, shoot=None) -> str:
    """Analyse every entity, confirm, launch; returns the session page's path."""
    page.goto("/")
    mark_window(page)
    page.fill("#id_batch_size", str(batch_size))
    page.click("button[name=analyze]")
    analysis = page.locator("#analysis")
    expect(analysis).to_be_visible()
    assert window_still_marked(page)  # the analysis came in place, by htmx
    assert page.url.endswith("/")
    if shoot:
        shoot(page, "launch-analysis")
    page.click("button[name=launch]")
    page.wait_for_url(SESSION_URL)
    return page.url


def test_login_page_and_an_auditor_sees_sessions_but_no_launch(page, auditor, log_in, shoot):
    page.goto("/sessions/00000000-0000-0000-0000-000000000000/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/sessions/"))
    shoot(page, "login")
    log_in(auditor)
    expect(page.locator("h1#sessions-title")).to_have_text("Recent sessions")
    expect(page.locator("#launch")).to_have_count(0)
    expect(page.locator("button[name=analyze]")).to_have_count(0)
    expect(page.locator(".main-nav")).to_contain_text("Logs")
    shoot(page, "dashboard-auditor")
    # A running session's page shows the auditor its progress, without any control.
    session = MigrationStatusFactory(
        overall_status=SessionStatus.RUNNING, started_at=timezone.now()
    )
    MigrationControlFactory(session=session, entity_type="orders", state="running", new_count=10)
    page.goto("/")
    page.click(f'tr[data-session="{session.migration_session_id}"] a')
    expect(status_badge(page)).to_have_text("running")
    expect(page.locator("tr.entity-row")).to_have_count(1)
    expect(page.locator(".controls button")).to_have_count(0)
    shoot(page, "session-auditor")


def test_operator_launches_the_clinic_after_its_analysis_and_watches_it_complete(
    page, operator, log_in, shoot, clinic
):
    data = clinic(scale=2)
    log_in(operator)
    shoot(page, "dashboard-operator-empty")
    url = launch_from_dashboard(page, batch_size=20, shoot=shoot)
    mark_window(page)
    # The page opens while the run goes on, and follows it to the end by itself.
    assert status_badge(page).inner_text() in ("pending", "running")
    launched = MigrationStatus.objects.get()
    assert launched.options["confirmed_deletes"] == dict.fromkeys(data.source_counts(), 0)
    expect(status_badge(page)).to_have_text(COMPLETED, timeout=45_000)
    assert page.url == url and window_still_marked(page)  # polled in place, never reloaded
    # Every entity's bar is full, the log followed the run to its end, the chart is drawn.
    for entity in data.source_counts():
        expect(page.locator(f'tr.entity-row[data-entity="{entity}"]')).to_have_attribute(
            "data-state", "completed"
        )
    expect(page.locator("#log-lines .log-line").last).to_contain_text("session completed")
    expect(page.locator("svg.throughput polyline.line").first).to_be_visible()
    session = MigrationStatus.objects.get()
    assert session.overall_status == SessionStatus.COMPLETED
    assert session.launched_by == "operator"

    failed = sum(session.controls.values_list("failed_count", flat=True))
    expect(status_badge(page)).to_have_text(f"completed with {failed} failed")
    shoot(page, "session-completed", docs="session")

    page.goto("/")
    row = page.locator(f'tr[data-session="{session.migration_session_id}"]')
    expect(row.locator(".badge")).to_have_text(f"completed with {failed} failed")
    expect(page.locator("#entity-health tbody tr")).to_have_count(len(data.source_counts()))
    shoot(page, "dashboard-operator", docs="dashboard")


def test_operator_pauses_and_resumes_a_run(page, operator, log_in, shoot, clinic):
    clinic(scale=4)
    log_in(operator)
    url = launch_from_dashboard(page, batch_size=10)
    mark_window(page)
    expect(status_badge(page)).to_have_text("running")
    page.click("button[name=pause]")
    expect(status_badge(page)).to_have_text("paused", timeout=20_000)
    expect(page.locator("button[name=resume]")).to_be_visible()
    shoot(page, "session-paused")
    # Paused means stopped: nothing more is processed while it waits.
    processed = page.locator("#stat-processed").inner_text()
    time.sleep(1.5)
    assert page.locator("#stat-processed").inner_text() == processed
    session = MigrationStatus.objects.get()
    assert session.overall_status == SessionStatus.PAUSED

    page.click("button[name=resume]")
    expect(status_badge(page)).to_have_text(COMPLETED, timeout=60_000)
    assert page.url == url and window_still_marked(page)
    expect(page.locator("#log-lines")).to_contain_text("session resumed by operator")
    expect(page.locator("#log-lines .log-line").last).to_contain_text("session completed")
    session.refresh_from_db()
    assert session.overall_status == SessionStatus.COMPLETED
    totals = session.controls.values_list(
        "new_count",
        "modified_count",
        "retry_count",
        "processed_count",
        "failed_count",
        "skipped_count",
    )
    for new, modified, retry, processed, failed, skipped in totals:
        assert processed + failed + skipped == new + modified + retry
    shoot(page, "session-resumed-completed")


def test_the_dashboard_shows_each_entity_and_a_run_that_completed_with_failures(
    page, operator, auditor, log_in, shoot, clinic
):
    data = clinic()
    launched = launch_session(options=RunOptions(baseline=True, batch_size=50), user="operator")
    session = execute_session(session_id=launched.migration_session_id)
    failed = sum(session.controls.values_list("failed_count", flat=True))
    assert session.overall_status == SessionStatus.COMPLETED and failed > 0
    label = f"completed with {failed} failed"

    log_in(auditor)
    rows = page.locator("#entity-health tbody tr")
    expect(rows).to_have_count(len(data.source_counts()))
    for entity in data.source_counts():
        control = session.controls.get(entity_type=entity)
        row = page.locator(f'#entity-health tr[data-entity="{entity}"]')
        expect(row.locator('[data-cell="migrated"]')).to_have_text(str(control.processed_count))
        expect(row.locator('[data-cell="quarantine"]')).to_have_text(f"{control.failed_count} open")
        expect(row.locator('[data-cell="last-run"] .badge')).to_have_text(
            f"completed with {control.failed_count} failed"
        )
        expect(row.locator('[data-cell="last-verify"]')).to_have_text("never")
    expect(page.locator("#worker-state")).to_contain_text("Runs execute in the web process")
    sessions_row = page.locator(f'tr[data-session="{session.migration_session_id}"]')
    expect(sessions_row.locator(".badge")).to_have_text(label)
    shoot(page, "dashboard-auditor-entities")

    sessions_row.locator("a").first.click()
    expect(status_badge(page)).to_have_text(label)
    expect(page.locator("#stat-done dd")).to_have_text("100.0 %")
    shoot(page, "session-completed-with-failures-auditor")
    page.locator("#stat-failed a").click()
    expect(page.locator("#session-filter")).to_contain_text(
        f"session {str(session.migration_session_id)[:8]}"
    )
    shoot(page, "quarantine-of-a-session")
    page.goto("/audit/sessions/")
    expect(page.locator(f'tr[data-session="{session.migration_session_id}"]')).to_contain_text(
        f"with {failed} failed"
    )
    shoot(page, "history-auditor")

    page.context.clear_cookies()
    log_in(operator)
    expect(page.locator("#entity-health tbody tr")).to_have_count(len(data.source_counts()))
    expect(page.locator("button[name=analyze]")).to_be_enabled()
    shoot(page, "dashboard-operator-entities")
    page.goto(f"/sessions/{session.migration_session_id}/")
    expect(status_badge(page)).to_have_text(label)
    shoot(page, "session-completed-with-failures-operator")
    page.goto("/audit/sessions/")
    shoot(page, "history-operator")
