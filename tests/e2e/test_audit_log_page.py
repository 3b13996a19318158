"""Browser test of the execution log page: an auditor filters it by action and sees who acted.

A run writes its own entries (actor empty: the run itself), an editor activates a mapping
version and two operators ask sessions to pause; the auditor picks "session.pause_requested"
in the Action filter and the list keeps exactly those entries, each naming its operator.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from migrationsapp.models import MigrationExecutionLog, SchemaMappingDefinition
from migrationsapp.models.choices import AuditAction, OperationType
from migrationsapp.services.logs import log_event
from migrationsapp.services.mapping_versions import activate_definition, clone_definition
from tests.support.people import ENTITY, run

pytestmark = [pytest.mark.e2e, pytest.mark.services]


def test_auditor_filters_the_log_by_action_and_sees_the_actor(
    page, auditor, editor, log_in, shoot, people
):
    session_id = run()["session"]["id"]
    active = SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True)
    draft = clone_definition(definition_id=active.pk, user=editor)
    activate_definition(definition_id=draft.pk, user=editor)
    for actor in ("alice", "bob"):
        log_event(
            session_id=session_id,
            operation=OperationType.CHECKPOINT_SAVE,
            action=AuditAction.SESSION_PAUSE_REQUESTED,
            actor=actor,
            message=f"pause requested by {actor}",
        )
    pauses = MigrationExecutionLog.objects.filter(action=AuditAction.SESSION_PAUSE_REQUESTED)
    others = MigrationExecutionLog.objects.exclude(action=AuditAction.SESSION_PAUSE_REQUESTED)
    assert pauses.count() == 2 and others.exists()

    log_in(auditor, next_url="/audit/logs/")
    rows = page.locator("table.log-table tbody tr")
    expect(page.locator("table.log-table")).to_contain_text("mapping.activated")
    expect(page.locator("table.log-table")).to_contain_text("editor")
    shoot(page, "audit-log")
    page.select_option("#id_action", "session.pause_requested")
    page.click("form.filters button[type=submit]")

    page.wait_for_url(re.compile(r"action=session\.pause_requested"))
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("td.log-actor")).to_have_text("bob")
    expect(rows.nth(1).locator("td.log-actor")).to_have_text("alice")
    for index in range(2):
        expect(rows.nth(index).locator("td.log-action")).to_have_text("session.pause_requested")
    expect(page.locator("table.log-table")).not_to_contain_text("mapping.activated")
    shoot(page, "audit-log-by-action")

    # The actor's link filters by that actor: alice's pause, nothing else of hers.
    rows.nth(1).locator("td.log-actor a").click()
    page.wait_for_url(re.compile(r"actor=alice"))
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("pause requested by alice")
