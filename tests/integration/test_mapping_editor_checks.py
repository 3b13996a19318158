"""The mapping editor shows its problems: a rule's on the rule's row, "did you mean" for an
unknown function name (in the editor, at the web import and at `mappings import`), rule
parameters as fields, new rows numbered after the last, the function library beside the
editor, the preview on the edit page, and an activation that checks both databases first and
says how many records the new version rewrites.

Definitions come from a real mapping file over two SQLite databases (``tests.support.people``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from migrationsapp.engine.function_reference import REFERENCE, signature
from migrationsapp.engine.transforms import BUILTIN_FUNCTIONS
from migrationsapp.models import FieldMapping, SchemaMappingDefinition, ValidationRule
from migrationsapp.services.mapping_versions import clone_definition
from tests.factories import RecordMapFactory
from tests.integration.conftest import cli
from tests.integration.test_mapping_views import edit_post_data, form_index
from tests.support.people import ENTITY, MAPPING
from tests.support.reliability import record

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "mapping.md"


@pytest.fixture
def draft(people, editor) -> SchemaMappingDefinition:
    active = SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True)
    return clone_definition(definition_id=active.pk, user=editor)


def url(name: str, *args) -> str:
    return reverse(f"mappings:{name}", args=args)


def html(response) -> str:
    return response.content.decode()


def tr(text: str, attribute: str, value: str) -> str:
    rows = re.findall(rf'<tr {attribute}="{re.escape(value)}"[^>]*>.*?</tr>', text, re.S)
    assert len(rows) == 1, (value, rows)
    return rows[0]


def problems_of(row_html: str) -> list[str]:
    return re.findall(r'<p class="problem">(.*?)</p>', row_html, re.S)


# --------------------------------------------------------------------------- did you mean

TYPOS = [
    ("titel(value)", "title"),
    ("Trim(value)", "trim"),
    ("lowr", "lower"),
    ("phone_e146(value, 'US')", "phone_e164"),
]


def test_validate_suggests_the_function_an_unknown_name_means(editor_client, draft):
    for typo, meant in TYPOS:
        FieldMapping.objects.filter(definition=draft, destination_field="name").update(
            transformation=typo
        )
        page = html(editor_client.get(url("edit", draft.pk) + "?validate=1"))
        (problem,) = problems_of(tr(page, "data-field", "name"))
        assert problem.endswith(f"did you mean `{meant}`?"), problem
    record(
        "hostile mapping",
        "misspelt function name in the editor",
        tried=len(TYPOS),
        held=len(TYPOS),
        outcome="refused with did you mean",
    )


def test_the_web_import_suggests_the_function_an_unknown_name_means(editor_client, people):
    text = people.mapping_text.replace("transform: trim}", 'transform: "titel(value)"}')
    response = editor_client.post(url("import"), {"text": text, "dry_run": "on"})

    assert response.status_code == 400
    row = tr(html(response), 'data-entity="person" data-field', "name")
    assert "unknown function &#x27;titel&#x27;; did you mean `title`?" in row


def test_mappings_import_suggests_the_function_an_unknown_name_means(people, tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(people.mapping_text.replace("transform: email}", "transform: emial}"))

    result = cli("mappings", "import", str(path), "--dry-run")

    assert result.code == 2
    assert "unknown function 'emial'; did you mean `email`?" in result.err + result.out


# --------------------------------------------------------------------------- rows and rules


def test_a_rules_problem_is_shown_on_the_rules_row_not_the_fields(editor_client, draft):
    ValidationRule.objects.create(
        definition=draft,
        position=2,
        field_name="name",
        rule_type="range",
        rule_parameters={"min": 5, "max": 1},
    )
    ValidationRule.objects.filter(definition=draft, field_name="email").update(
        rule_parameters={"pattern": "(a)\\1"}
    )

    page = html(editor_client.get(url("edit", draft.pk) + "?validate=1"))

    (name_rule,) = problems_of(tr(page, "data-rule", "name"))
    assert name_rule == "range: min 5 is greater than max 1"
    (email_rule,) = problems_of(tr(page, "data-rule", "email"))
    assert email_rule.startswith("format: the pattern")
    assert problems_of(tr(page, "data-field", "name")) == []
    assert problems_of(tr(page, "data-field", "email")) == []
    detail = html(editor_client.get(url("validate", draft.pk)))
    assert problems_of(tr(detail, "data-rule", "name")) == [name_rule]


def test_rule_parameters_are_fields_per_rule_type(editor_client, draft):
    page = editor_client.get(url("edit", draft.pk))
    email = form_index(page, "rules", "email")
    assert page.context["formsets"]["rules"].forms[email]["pattern"].value() == "email"
    data = edit_post_data(page)
    data[f"rules-{email}-pattern"] = "[a-z]+@x\\.org"
    data[f"rules-{email}-min"] = "3"  # not a parameter of format: dropped
    total = page.context["formsets"]["rules"].initial_form_count()
    data["rules-TOTAL_FORMS"] = total + 1
    data.update(
        {
            f"rules-{total}-position": "2",
            f"rules-{total}-field_name": "legacy_id",
            f"rules-{total}-rule_type": "range",
            f"rules-{total}-min": "1",
            f"rules-{total}-max": "99.5",
            f"rules-{total}-pattern": "ignored",
        }
    )

    response = editor_client.post(url("edit", draft.pk), data)

    assert response.status_code == 302
    stored = dict(
        ValidationRule.objects.filter(definition=draft).values_list("field_name", "rule_parameters")
    )
    assert stored == {"email": {"pattern": "[a-z]+@x\\.org"}, "legacy_id": {"min": 1, "max": 99.5}}


def test_new_rows_take_the_next_positions(editor_client, draft):
    FieldMapping.objects.filter(definition=draft, destination_field="email").update(position=7)
    page = editor_client.get(url("edit", draft.pk))

    blanks = page.context["formsets"]["fields"].extra_forms
    assert [f["position"].value() for f in blanks] == [8, 9]
    rules = page.context["formsets"]["rules"]
    last = max(f.instance.position for f in rules.initial_forms)
    assert [f["position"].value() for f in rules.extra_forms] == [last + 1, last + 2]


def test_the_edit_page_lists_the_library_and_offers_the_preview(editor_client, draft):
    page = html(editor_client.get(url("edit", draft.pk)))

    panel = re.search(r'<aside class="card library".*?</aside>', page, re.S).group(0)
    listed = re.findall(r'data-function-name="(\w+)"', panel)
    assert listed == sorted(BUILTIN_FUNCTIONS)
    assert "map(v, mapping, default=None)" in panel
    title = re.search(r'data-function-name="title".*?</div>', panel, re.S).group(0)
    assert "O&#x27;Brien Mc-Dowell" in title
    assert f'hx-get="{url("preview", draft.pk)}"' in page and 'id="preview-result"' in page


@pytest.mark.parametrize("name", sorted(BUILTIN_FUNCTIONS))
def test_each_library_example_is_one_of_the_documented_examples(name):
    docs = DOCS.read_text(encoding="utf-8")
    heading = f"### `{signature(name)}`"
    assert heading in docs
    section = docs.split(heading, 1)[1].split("\n### ", 1)[0]
    assert f"- `{REFERENCE[name].example}` → " in section


# --------------------------------------------------------------------------- activation


def test_the_confirmation_says_how_many_records_become_modified(editor_client, draft):
    for n in range(3):
        RecordMapFactory(entity_type=ENTITY, legacy_key_text=str(n), legacy_key=[n])
    RecordMapFactory(
        entity_type=ENTITY, legacy_key_text="9", legacy_key=[9], deleted_at="2026-01-01T00:00:00Z"
    )

    page = html(editor_client.get(url("activate_confirm", draft.pk)))

    what = re.sub(r"<.*?>", "", re.search(r'<p class="what-follows">.*?</p>', page, re.S).group(0))
    assert what.startswith(
        "Every one of the 3 records of person migrated so far becomes modified on the next run"
    )
    assert "Activate v2 and rewrite 3 records" in page


def test_activation_refuses_a_draft_whose_columns_do_not_exist(editor_client, draft):
    FieldMapping.objects.filter(definition=draft, destination_field="name").update(
        source_field="full_name"
    )

    confirm = html(editor_client.get(url("activate_confirm", draft.pk)))
    response = editor_client.post(url("activate", draft.pk), follow=True)

    assert "Activation is refused" in confirm and "rewrite" not in confirm
    assert "full_name" in " ".join(problems_of(tr(confirm, "data-field", "name")))
    assert "Not activated" in html(response)
    active = SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True)
    assert active.version == 1
    draft.refresh_from_db()
    assert draft.activated_at is None


def test_activation_refuses_when_a_database_cannot_be_read(editor_client, draft, people):
    people.target.dispose()
    (people.root / "target.db").unlink()

    response = editor_client.post(url("activate", draft.pk), follow=True)

    text = html(response)
    assert "Not activated" in text
    assert "the destination database &#x27;target&#x27; cannot be read" in text
    assert SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True).version == 1
    record(
        "faults",
        "destination database gone at activation",
        tried=1,
        held=1,
        outcome="activation refused, nothing changed",
    )


def test_activation_of_a_good_draft_still_works(editor_client, draft):
    response = editor_client.post(url("activate", draft.pk), follow=True)

    assert "person v2 is now the active definition" in html(response)
    assert SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True).version == 2


def test_the_mapping_file_fixture_is_the_one_imported(people):
    assert "transform: trim}" in MAPPING and "transform: email}" in MAPPING
