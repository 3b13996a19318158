"""Verify and schedules in a real browser: a completed session's "verify now" leads to the
report page, which fills in by itself (htmx) with an equal badge per entity; a planted
difference shows its key and both values. An operator creates and pauses a schedule and the
dashboard shows its next run; an auditor reads both pages without any control.

The session and the verification run in threads of the live server, on a SQLite legacy
clinic and destination under the test's own directory (control database: PostgreSQL).
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from django.db import connection
from playwright.sync_api import expect

from migrationsapp.models import RunSchedule, VerifyRun
from migrationsapp.models.choices import SessionStatus
from migrationsapp.services.runs import RunOptions, run_session
from tests.support.sqlite_clinic import build_sqlite_clinic

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPORT_URL = re.compile(r"/verify/([0-9a-f-]{36})/$")


@pytest.fixture
def migrated(tmp_path, settings, monkeypatch):
    if connection.vendor == "sqlite":
        pytest.skip("a verification runs in a thread of the live server: use PostgreSQL")
    settings.DIFFMIG_SQLITE_ROOT = tmp_path
    settings.REDIS_URL = None
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", "")
    monkeypatch.setenv("DIFFMIG_TARGET_URL", "")
    clinic = build_sqlite_clinic(tmp_path)
    session = run_session(options=RunOptions(baseline=True, batch_size=200), user="operator")
    assert session.overall_status == SessionStatus.COMPLETED
    return clinic, session


def test_verify_now_leads_to_a_report_that_fills_in_by_itself(
    page, operator, auditor, log_in, shoot, migrated
):
    clinic, session = migrated
    target = sa.create_engine(clinic.target_url)
    with target.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE office SET name = 'Planted name' "
                "WHERE legacy_id = (SELECT min(legacy_id) FROM office)"
            )
        )
    target.dispose()

    log_in(operator, next_url=f"/sessions/{session.migration_session_id}/")
    verify_now = page.locator("button[name=verify_now]")
    expect(verify_now).to_be_visible()
    shoot(page, "session-verify-now")
    verify_now.click()
    page.wait_for_url(REPORT_URL)
    page.evaluate("window.__diffmigNoReload = true")
    badge = page.locator("#verify-title .badge")
    expect(badge).to_have_attribute("data-state", "mismatch", timeout=30_000)
    assert page.evaluate("window.__diffmigNoReload === true")  # htmx filled it in place
    rows = page.locator("table.verify-entities tbody tr")
    expect(rows).to_have_count(4)
    expect(page.locator('tr[data-entity="office"] .badge')).to_have_text("differences found")
    expect(page.locator('tr[data-entity="doctor"] .badge')).to_have_text("equal")
    expect(page.locator("table.verify-differences")).to_contain_text("Planted name")
    expect(page.locator("table.verify-differences")).to_contain_text("name")
    run = VerifyRun.objects.get()
    assert run.session_id == session.migration_session_id
    shoot(page, "verify-report-operator")

    page.goto("/verify/")
    expect(page.locator(f'tr[data-verify="{run.id}"]')).to_contain_text("office")
    shoot(page, "verify-history-operator")

    page.context.clear_cookies()
    log_in(auditor, next_url="/verify/")
    expect(page.locator("button[name=verify]")).to_have_count(0)
    page.click(f'tr[data-verify="{run.id}"] a.mono')
    expect(page.locator("#verify-title .badge")).to_have_attribute("data-state", "mismatch")
    shoot(page, "verify-report-auditor")


def test_an_operator_schedules_and_pauses_a_run_the_dashboard_shows_next(
    page, operator, auditor, log_in, shoot, migrated
):
    log_in(operator, next_url="/schedules/")
    expect(page.locator("text=Schedules fire only with workers")).to_be_visible()
    page.fill("#id_name", "nightly")
    page.check('input[name=entities][value="office"]')
    page.fill("#id_cron", "0 2 * * *")
    page.click("button[name=create]")
    row = page.locator('tr[data-schedule="nightly"]')
    expect(row).to_contain_text("cron 0 2 * * * (UTC)")
    schedule = RunSchedule.objects.get()
    expect(row).to_contain_text(f"{schedule.next_run_at:%Y-%m-%d} 02:00")
    shoot(page, "schedules-operator")

    page.goto("/")
    expect(page.locator('.next-runs [data-schedule="nightly"]')).to_contain_text(
        f"{schedule.next_run_at:%Y-%m-%d} 02:00 UTC"
    )
    shoot(page, "dashboard-next-runs")

    page.goto("/schedules/")
    page.click('tr[data-schedule="nightly"] button[name=pause]')
    expect(page.locator('tr[data-schedule="nightly"] .badge.paused')).to_be_visible()
    schedule.refresh_from_db()
    assert schedule.paused

    page.context.clear_cookies()
    log_in(auditor, next_url="/schedules/")
    expect(page.locator('tr[data-schedule="nightly"]')).to_be_visible()
    expect(
        page.locator("button[name=pause], button[name=resume], button[name=create]")
    ).to_have_count(0)
    shoot(page, "schedules-auditor")
