"""Browser test of the record lookup's changed fields: an operator reads the values an update
changed, an auditor the field names only; a rewrite under a new mapping version says so."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.integration.test_update_changes_run import change_and_rewrite, prepare

pytestmark = [pytest.mark.e2e, pytest.mark.services]


@pytest.fixture
def changed(tmp_path, settings, monkeypatch):
    root = tmp_path.resolve()
    settings.DIFFMIG_SQLITE_ROOT = root
    settings.REDIS_URL = None
    legacy_url, target_url = (
        f"sqlite:///{root / 'legacy.sqlite3'}",
        f"sqlite:///{root / 'target.sqlite3'}",
    )
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", legacy_url)
    monkeypatch.setenv("DIFFMIG_TARGET_URL", target_url)
    legacy, target = sa.create_engine(legacy_url), sa.create_engine(target_url)
    prepare(legacy, target, decimal="NUMERIC", money="NUMERIC")
    change_and_rewrite(root, legacy)
    yield
    legacy.dispose()
    target.dispose()


def look_up(page, key: str) -> None:
    page.select_option("#id_entity", "item")
    page.fill("#id_key", key)
    page.click("form.filters button[type=submit]")


def test_lookup_shows_an_updates_changed_fields_by_role(
    changed, page, log_in, operator, auditor, shoot
):
    log_in(operator, next_url="/audit/lookup/")
    look_up(page, "1")
    fields = page.locator("table.changed-fields")
    expect(fields).to_contain_text("name")
    expect(fields.locator("td.before").first).to_have_text("“alpha”")
    expect(fields.locator("td.after").first).to_have_text("“Alpha”")
    expect(fields.locator("td.after").nth(1)).to_have_text("NULL")
    shoot(page, "record-lookup-changes-operator")
    look_up(page, "2")
    expect(page.locator(".rewrite")).to_have_text("rewritten, no field changed (mapping v1 → v2)")

    page.context.clear_cookies()
    log_in(auditor, next_url="/audit/lookup/")
    look_up(page, "1")
    expect(page.locator(".changed-names")).to_have_text("name, note")
    expect(page.locator("table.changed-fields")).to_have_count(0)
    expect(page.locator("main")).not_to_contain_text("alpha")
    shoot(page, "record-lookup-changes-auditor")
