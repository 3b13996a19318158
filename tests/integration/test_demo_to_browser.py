"""From the demo to the browser in one step: after the demo, the web pages sign the demo user in
and launch a run on the demo's databases, with nothing but the control database in common.

The server is another process than the demo: nothing the demo put in its own environment may
help it. So the demo's variables are removed before the pages are asked anything; the pages
must find the demo's connections in the connections table.
"""

from __future__ import annotations

import io
import re
import threading

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from migrationsapp.cli.setup_hints import command_prefix
from migrationsapp.models import Connection, MigrationStatus
from migrationsapp.models.choices import SessionStatus
from migrationsapp.selectors.sessions import session_document
from migrationsapp.services.demo_user import DEMO_PASSWORD, embedded_control_database

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

SIGN_IN = re.compile(r"open http://127\.0\.0\.1:8000/ and sign in as (\S+) / (\S+)\n")
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
HTMX = {"HTTP_HX_REQUEST": "true"}
ENTITIES = ["office", "doctor", "patient", "appointment"]


def run_demo_in_process(tmp_path, monkeypatch) -> str:
    monkeypatch.delenv("DIFFMIG_LEGACY_URL", raising=False)
    monkeypatch.delenv("DIFFMIG_TARGET_URL", raising=False)
    out = io.StringIO()
    with override_settings(DIFFMIG_SQLITE_ROOT=tmp_path):
        call_command("demo", stdout=out)
    # What the demo's process had in its environment stays there.
    monkeypatch.delenv("DIFFMIG_LEGACY_URL", raising=False)
    monkeypatch.delenv("DIFFMIG_TARGET_URL", raising=False)
    return out.getvalue()


def wait_for_session_threads() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith("diffmig-"):
            thread.join(timeout=60)


def test_after_the_demo_its_user_signs_in_analyses_and_launches_a_run(
    tmp_path, monkeypatch, settings
):
    settings.REDIS_URL = None  # the embedded default: a launch runs in a thread of the server
    output = run_demo_in_process(tmp_path, monkeypatch)
    found = SIGN_IN.search(output)
    assert found, output
    username, password = found.groups()
    assert username == "demo"
    # The documented password only where the control database is the embedded one.
    assert (password == DEMO_PASSWORD) is embedded_control_database()
    assert f"next: {command_prefix()} logs " in output
    # The connections are stored as URLs, not as names of the demo's variables.
    urls = dict(Connection.objects.values_list("name", "url"))
    assert urls == {
        "legacy": f"sqlite:///{tmp_path / 'demo' / 'legacy.sqlite3'}",
        "target": f"sqlite:///{tmp_path / 'demo' / 'target.sqlite3'}",
    }

    browser = Client()
    login = browser.post("/accounts/login/", {"username": username, "password": password})
    assert login.status_code == 302 and login["Location"] == "/", login.content.decode()[:500]
    with override_settings(DIFFMIG_SQLITE_ROOT=tmp_path):
        dashboard = browser.get("/").content.decode()
        assert 'hx-post="/launch/analyze/"' in dashboard
        analysis = browser.post(
            "/launch/analyze/", {"mode": "differential", "batch_size": 100}, **HTMX
        )
        html = analysis.content.decode()
        assert analysis.status_code == 200, html
        assert "is not set" not in html
        assert 'id="analysis"' in html
        assert re.findall(r'<tr data-entity="(\w+)">', html) == ENTITIES
        confirmation = dict(HIDDEN.findall(html))
        form = {**confirmation, "entities": re.findall(r'name="entities" value="(\w+)"', html)}
        before = MigrationStatus.objects.count()
        launched = browser.post("/launch/", form)
        assert launched.status_code == 302, launched.content.decode()[:2000]
        wait_for_session_threads()
    session = MigrationStatus.objects.order_by("-created_at").first()
    assert MigrationStatus.objects.count() == before + 1
    assert launched["Location"] == f"/sessions/{session.migration_session_id}/"
    assert session.launched_by == "demo"
    assert session.overall_status == SessionStatus.COMPLETED
    # After the demo's own differential run, only its quarantined records are taken again.
    entities = session_document(session)["entities"]
    assert list(entities) == ENTITIES
    for counts in entities.values():
        assert counts["new"] == counts["modified"] == counts["deleted"] == 0
        assert counts["processed"] + counts["failed"] + counts["skipped"] == counts["retry"]
    assert sum(counts["retry"] for counts in entities.values()) > 0
    page = browser.get(launched["Location"]).content.decode()
    assert "is not set" not in page and "completed" in page
