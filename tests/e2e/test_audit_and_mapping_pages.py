"""Browser tests of the mapping editor and the auditors' record lookup.

An editor edits a field mapping of a draft, previews it and sees a validation failure next
to the row; an auditor finds a record by its legacy key and reads its history.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from migrationsapp.models import RecordMap, SchemaMappingDefinition
from migrationsapp.services.mapping_versions import clone_definition
from tests.support.people import ENTITY, run

pytestmark = [pytest.mark.e2e, pytest.mark.services]


def test_editor_edits_a_field_mapping_previews_it_and_sees_the_failing_row(
    page, editor, log_in, shoot, people
):
    active = SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True)
    draft = clone_definition(definition_id=active.pk, user=editor)
    log_in(editor, next_url=f"/mappings/{draft.pk}/edit/")
    name_row = page.locator('tr[data-field="name"]')
    name_row.locator("input[name$='-transformation']").fill("upper(trim(value))")
    shoot(page, "mapping-edit")
    page.click("button[name=validate]")
    expect(page.locator('tr[data-field="name"] td.problems .ok')).to_be_visible()
    shoot(page, "mapping-validated")

    page.goto(f"/mappings/{draft.pk}/")
    page.click("#preview-result >> xpath=preceding-sibling::form//button")
    ann = page.locator('#preview-result tr[data-key="1"]')
    expect(ann).to_have_class("passes")
    expect(ann).to_contain_text("ANN")
    bob = page.locator('#preview-result tr[data-key="2"]')
    expect(bob).to_have_class("fails")
    expect(bob.locator("td.verdict")).to_contain_text("fails format on email")
    expect(bob.locator("dd.failing")).to_contain_text("not-an-email")
    shoot(page, "mapping-preview")
    # The stored draft holds the edit; the active version is untouched.
    draft.refresh_from_db()
    assert draft.field_mappings.get(destination_field="name").transformation == (
        "upper(trim(value))"
    )
    assert active.field_mappings.get(destination_field="name").transformation == "trim"


def test_auditor_finds_a_record_by_legacy_key_and_sees_its_history(
    page, auditor, log_in, shoot, people
):
    document = run()
    assert document["session"]["status"] == "completed"
    uuid = RecordMap.objects.get(entity_type=ENTITY, legacy_key_text="1").destination_uuid
    log_in(auditor, next_url="/audit/lookup/")
    page.select_option("#id_entity", ENTITY)
    page.fill("#id_key", "1")
    page.click("form.filters button[type=submit]")
    expect(page.locator("main")).to_contain_text(str(uuid))
    expect(page.locator("main")).to_contain_text("created")
    expect(page.locator("main")).to_contain_text(document["session"]["id"][:8])
    shoot(page, "record-lookup")
    # The record that failed shows its failure and why.
    page.fill("#id_key", "2")
    page.click("form.filters button[type=submit]")
    expect(page.locator("main")).to_contain_text("failed")
    expect(page.locator("main")).to_contain_text("not-an-email")
    expect(page.locator("#launch")).to_have_count(0)
    shoot(page, "record-lookup-failed")
