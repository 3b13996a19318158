"""Browser tests of the quarantine triage, the history's new columns, lookup and the 403 page.

An operator finds a refused parent with the children that wait for it, selects it with them,
is refused without a note, resolves them with one and reads the note on the record's lookup
page; an auditor reads the same pages without any action, is offered the key they meant, and
meets the 403 page (with its navigation and the role they would need) on an operator's page.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from migrationsapp.models import QuarantinedRecord
from tests.support.people import run
from tests.support.teams import create_teams

pytestmark = [pytest.mark.e2e, pytest.mark.services]

NOTE = "team 2 was dissolved in 2019"


@pytest.fixture
def teams(tmp_path, settings):
    """A run of the teams pair: team 2 refused, its members 21 and 22 waiting for it."""
    root = tmp_path.resolve()
    settings.DIFFMIG_SQLITE_ROOT = root
    create_teams(root)
    document = run()
    assert document["session"]["status"] == "completed"
    return QuarantinedRecord.objects.get(entity_type="team", resolved_at=None)


def test_operator_resolves_a_parent_with_its_dependants_and_reads_the_note_on_lookup(
    page, operator, log_in, shoot, teams
):
    log_in(operator, next_url="/audit/quarantine/")
    expect(page.locator("#groups tr.group")).to_have_count(2)
    expect(page.locator("#groups tr.group").first).to_contain_text("member")
    rows = page.locator("table.quarantine > tbody > tr")
    expect(rows).to_have_count(1)
    parent = page.locator(f"#quarantine-{teams.pk}")
    expect(parent.locator(".dependants")).to_contain_text("2 records wait for it")
    expect(parent.locator(".dependants")).to_contain_text("member 21")
    shoot(page, "quarantine-operator")

    parent.locator("input[name=families]").check()
    page.click("form.bulk button[value=resolve]")
    expect(page.locator("#bulk-notice")).to_contain_text("a note is required to resolve")
    expect(page.locator(f"#quarantine-{teams.pk} input[name=families]")).to_be_checked()
    assert not QuarantinedRecord.objects.filter(resolved_at__isnull=False).exists()
    shoot(page, "quarantine-note-required")

    page.fill("#bulk-note", NOTE)
    page.click("form.bulk button[value=resolve]")
    expect(page.locator("#bulk-notice")).to_contain_text("3 quarantine entries marked resolved.")
    expect(page.locator("table.quarantine")).to_have_count(0)
    assert (
        QuarantinedRecord.objects.filter(resolution_note=NOTE, resolved_by="operator").count() == 3
    )

    page.select_option("#id_state", "resolved")
    page.click("form.filters button[type=submit]")
    expect(page.locator("table.quarantine > tbody > tr")).to_have_count(3)
    expect(page.locator("#results")).to_have_count(1)  # swapped, not nested
    expect(page.locator("form.bulk")).to_have_count(0)  # nothing to act on
    expect(page.locator(f"#quarantine-{teams.pk} .resolution")).to_contain_text(NOTE)
    shoot(page, "quarantine-resolved")

    page.goto("/audit/lookup/")
    page.select_option("#id_entity", "member")
    page.fill("#id_key", "21")
    page.click("form.filters button[type=submit]")
    history = page.locator("table.quarantine-history")
    expect(history).to_contain_text(NOTE)
    expect(history.locator("td.resolved-by")).to_have_text("operator")
    shoot(page, "lookup-resolution-operator")

    page.goto("/audit/sessions/")
    expect(page.locator("table.history td.failed")).to_have_text("3")
    shoot(page, "history-operator")


def test_auditor_reads_triage_history_and_lookup_and_meets_the_403_page(
    page, auditor, log_in, shoot, teams
):
    log_in(auditor, next_url="/audit/quarantine/")
    expect(page.locator(f"#quarantine-{teams.pk} .dependants")).to_contain_text(
        "2 records wait for it"
    )
    expect(page.locator("form.bulk")).to_have_count(0)
    expect(page.locator("input[type=checkbox]")).to_have_count(0)
    expect(page.locator("td.actions")).to_have_count(0)
    shoot(page, "quarantine-auditor")

    page.goto("/audit/sessions/")
    row = page.locator("table.history tbody tr").first
    expect(row.locator(".with-failed")).to_have_text("with 3 failed")
    expect(row.locator("td.failed")).to_have_text("3")
    expect(row.locator("td.rate")).to_have_text(re.compile(r"^\d+(\.\d)?$"))
    page.select_option("#id_status", "completed_with_failures")
    page.click("form.filters button[type=submit]")
    expect(page.locator("table.history tbody tr")).to_have_count(1)
    shoot(page, "history-auditor")

    page.goto("/audit/lookup/")
    page.select_option("#id_entity", "team")
    page.fill("#id_key", "1 ")
    page.click("form.filters button[type=submit]")
    suggestion = page.locator(".did-you-mean a")
    expect(suggestion).to_have_text("“1”")
    shoot(page, "lookup-did-you-mean-auditor")
    suggestion.click()
    expect(page.locator("dd.uuid")).not_to_have_text("none yet (never written)")

    response = page.goto("/django-rq/")
    assert response.status == 403
    expect(page.locator("#forbidden")).to_contain_text("This needs the operators role.")
    expect(page.locator("nav.main-nav")).to_contain_text("Quarantine")
    shoot(page, "forbidden-auditor")
