"""Browser tests of the mapping editor's problems and of the connections pages.

An editor edits a draft and sees a rule's problem on the rule's row and "did you mean" on the
field's row, with the function library beside the tables; an activation of a draft that
fails the checks is refused on its confirmation page; an editor tests a connection and reads
its server version, an auditor reads the same page without a Test button or a password.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from migrationsapp.models import FieldMapping, SchemaMappingDefinition
from migrationsapp.services.mapping_versions import clone_definition
from tests.factories import USER_PASSWORD
from tests.support.people import ENTITY

pytestmark = [pytest.mark.e2e, pytest.mark.services]


@pytest.fixture
def draft(people, editor) -> SchemaMappingDefinition:
    active = SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True)
    return clone_definition(definition_id=active.pk, user=editor)


def test_editor_sees_a_rules_problem_on_its_row_beside_the_library(
    page, editor, log_in, shoot, draft
):
    log_in(editor, next_url=f"/mappings/{draft.pk}/edit/")
    expect(page.locator("#function-library")).to_be_visible()
    expect(page.locator('#function-library [data-function-name="title"] .signature')).to_have_text(
        "title(v)"
    )
    name_row = page.locator('tr[data-field="name"]')
    name_row.locator("input[name$='-transformation']").fill("titel(value)")
    rule_row = page.locator('tr[data-rule="email"]')
    expect(rule_row.locator("input[name$='-pattern']")).to_have_value("email")
    expect(rule_row.locator("input[name$='-min']")).to_be_hidden()
    rule_row.locator("input[name$='-pattern']").fill("(a)\\1")
    page.click("button[name=validate]")

    rule_problem = page.locator('tr[data-rule="email"] td.problems .problem')
    expect(rule_problem).to_contain_text("format: the pattern")
    field_problem = page.locator('tr[data-field="name"] td.problems .problem')
    expect(field_problem).to_contain_text("did you mean `title`?")
    expect(page.locator('tr[data-field="email"] td.problems .ok')).to_be_visible()
    # The problem sits under its row's inputs, inside the page: nothing to scroll sideways.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    row_box = page.locator('tr[data-rule="email"] td.cell-field_name').bounding_box()
    problem_box = rule_problem.bounding_box()
    assert problem_box["y"] > row_box["y"]
    assert problem_box["x"] + problem_box["width"] <= page.viewport_size["width"]
    shoot(page, "mapping-editor-problems")

    # The preview, on the same page, runs the saved draft: it says why it cannot.
    page.fill("#id_limit", "3")
    page.click("text=Preview v2")
    expect(page.locator("#preview-result .error")).to_contain_text("titel")


def test_activation_of_a_failing_draft_is_refused_on_its_confirmation(
    page, editor, log_in, shoot, draft
):
    FieldMapping.objects.filter(definition=draft, destination_field="name").update(
        source_field="full_name"
    )
    log_in(editor, next_url=f"/mappings/{draft.pk}/")
    page.click("text=Activate v2…")

    expect(page.locator(".activate-confirm .refused")).to_contain_text("Activation is refused")
    expect(page.locator('tr[data-field="name"] td.problems')).to_contain_text("full_name")
    expect(page.locator(".activate-confirm button")).to_have_count(0)
    shoot(page, "mapping-activate-refused")
    assert SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True).version == 1


def test_activation_confirmation_says_what_follows(page, editor, log_in, shoot, draft):
    log_in(editor, next_url=f"/mappings/{draft.pk}/activate/confirm/")
    expect(page.locator(".what-follows")).to_contain_text("No record of person has been migrated")
    page.click("text=Activate v2")
    expect(page.locator(".message.success")).to_contain_text("person v2 is now the active")
    shoot(page, "mapping-activated")


def test_editor_tests_a_connection_and_an_auditor_reads_it(
    page, editor, auditor, log_in, shoot, people, browser, live_server
):
    log_in(editor, next_url="/connections/")
    expect(page.locator('tr[data-connection="target"]')).to_contain_text("never")
    page.click("text=target")
    page.click("text=Test the connection")
    expect(page.locator("#last-test .server-version")).to_contain_text("SQLite 3.")
    expect(page.locator("#last-test")).to_contain_text("Tested just now")
    shoot(page, "connection-tested")
    page.get_by_role("link", name="Edit", exact=True).click()
    page.wait_for_url("**/connections/target/edit/")
    expect(page.locator("#id_password")).to_have_value("")
    shoot(page, "connection-edit")

    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 860})
    other = context.new_page()
    other.goto("/accounts/login/?next=/connections/target/")
    other.fill("#id_username", auditor.get_username())
    other.fill("#id_password", USER_PASSWORD)
    other.click("button[type=submit]")
    other.wait_for_url("**/connections/target/")
    expect(other.locator(".server-version")).to_contain_text("SQLite 3.")
    expect(other.locator("text=Test the connection")).to_have_count(0)
    expect(other.get_by_role("link", name="Edit", exact=True)).to_have_count(0)
    shoot(other, "connection-auditor")
    context.close()
