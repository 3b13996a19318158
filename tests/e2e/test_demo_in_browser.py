"""From the demo to the browser: the demo prints a URL, a user and a password; a newcomer signs in
with them in a real browser and launches a run on the demo's databases, which completes.

The demo runs in this process (as ``make demo`` would, against the live server's database);
its variables are removed before the browser starts, as the server is another process.
"""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.db import connection
from playwright.sync_api import expect

from migrationsapp.models import MigrationStatus
from migrationsapp.models.choices import SessionStatus

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SIGN_IN = re.compile(r"open http://127\.0\.0\.1:8000/ and sign in as (\S+) / (\S+)\n")
SESSION_URL = re.compile(r"/sessions/([0-9a-f-]{36})/$")


@pytest.fixture
def demo_output(tmp_path, settings, monkeypatch) -> str:
    if connection.vendor == "sqlite":
        pytest.skip(
            "a run from the browser writes from its own thread while the live server reads: "
            "the in-memory SQLite test database locks whole tables; use PostgreSQL"
        )
    settings.DIFFMIG_SQLITE_ROOT = tmp_path
    settings.REDIS_URL = None  # the embedded default: a launch runs in a thread of the server
    monkeypatch.delenv("DIFFMIG_LEGACY_URL", raising=False)
    monkeypatch.delenv("DIFFMIG_TARGET_URL", raising=False)
    out = io.StringIO()
    call_command("demo", stdout=out)
    monkeypatch.delenv("DIFFMIG_LEGACY_URL", raising=False)
    monkeypatch.delenv("DIFFMIG_TARGET_URL", raising=False)
    return out.getvalue()


def test_a_newcomer_signs_in_as_the_demo_user_and_launches_a_run(page, demo_output, shoot):
    found = SIGN_IN.search(demo_output)
    assert found, demo_output
    username, password = found.groups()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    expect(page.locator("h1#sessions-title")).to_have_text("Recent sessions")
    page.click("button[name=analyze]")
    expect(page.locator("#analysis")).to_be_visible()
    expect(page.locator("#analysis")).not_to_contain_text("is not set")
    shoot(page, "demo-analysis")
    page.click("button[name=launch]")
    page.wait_for_url(SESSION_URL)
    badge = page.locator("#session-status .badge")
    expect(badge).to_have_text(re.compile(r"^completed"), timeout=30_000)
    shoot(page, "demo-session")
    session = MigrationStatus.objects.order_by("-created_at").first()
    assert session.launched_by == username
    assert session.overall_status == SessionStatus.COMPLETED
    # The demo's quarantined records are tried again and refused again: the page says so.
    failed = sum(session.controls.values_list("failed_count", flat=True))
    assert failed > 0
    expect(badge).to_have_text(f"completed with {failed} failed")
