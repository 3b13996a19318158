"""The web mapping editor: list, definition page, draft editing, validate, preview, clone,
activate, diff, YAML export and import.

The definitions are imported from a real mapping file over two SQLite databases
(``tests.support.people``), so that introspection, validation and preview run for real; the
control database is PostgreSQL or, on the embedded default, SQLite.
"""

from __future__ import annotations

import re

import pytest
from django import forms
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from migrationsapp.models import FieldMapping, SchemaMappingDefinition, ValidationRule
from migrationsapp.services.mapping_versions import clone_definition
from migrationsapp.services.mappings import export_mapping_text
from tests.factories import ConnectionFactory, FieldMappingFactory, SchemaMappingDefinitionFactory
from tests.support.people import ENTITY

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def active(people) -> SchemaMappingDefinition:
    return SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True)


@pytest.fixture
def draft(active, editor) -> SchemaMappingDefinition:
    return clone_definition(definition_id=active.pk, user=editor)


def url(name: str, *args) -> str:
    return reverse(f"mappings:{name}", args=args)


def html(response) -> str:
    return response.content.decode()


def row(text: str, attribute: str, value: str) -> str:
    """The HTML of the table row whose ``attribute`` is ``value`` (exactly one)."""
    rows = re.findall(rf'<tr {attribute}="{re.escape(value)}"[^>]*>.*?</tr>', text, re.S)
    assert len(rows) == 1, (value, rows)
    return rows[0]


def field_rows(definition) -> list[tuple]:
    return list(
        FieldMapping.objects.filter(definition=definition)
        .order_by("position", "destination_field")
        .values_list("source_field", "destination_field", "transformation")
    )


def edit_post_data(response) -> dict[str, object]:
    """What a browser sends for the unchanged edit page: settings and the stored rows."""
    data: dict[str, object] = {}
    form = response.context["form"]
    for name in form.fields:
        _put(data, form[name].html_name, form[name].value(), form.fields[name])
    for formset in response.context["formsets"].values():
        management = formset.management_form
        for name in management.fields:
            data[management[name].html_name] = management[name].value()
        data[f"{formset.prefix}-TOTAL_FORMS"] = formset.initial_form_count()
        for row_form in formset.initial_forms:
            for name, field in row_form.fields.items():
                _put(data, row_form[name].html_name, row_form[name].value(), field)
    return data


def _put(data: dict[str, object], key: str, value: object, field: forms.Field) -> None:
    if isinstance(field, forms.BooleanField):
        if value:  # an unticked checkbox sends nothing
            data[key] = "on"
        return
    data[key] = "" if value is None else value


def form_index(response, prefix: str, key: str) -> int:
    """The position in formset ``prefix`` of the stored row whose key cell is ``key``."""
    forms = response.context["formsets"][prefix].initial_forms
    return next(i for i, f in enumerate(forms) if f.row_key == key)


# --------------------------------------------------------------------------- access


READ_URLS = ["list", "export", "detail", "validate", "preview", "diff"]


def read_url(name: str, definition: SchemaMappingDefinition) -> str:
    if name in ("list", "export"):
        return url(name)
    if name == "diff":
        return url("diff", definition.entity_type)
    return url(name, definition.pk)


@pytest.mark.parametrize("name", [*READ_URLS, "edit", "import"])
def test_anonymous_is_sent_to_the_login_page(client, draft, name):
    address = {"edit": url("edit", draft.pk), "import": url("import")}.get(name) or read_url(
        name, draft
    )
    response = client.get(address)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("persona", ["auditor_client", "operator_client", "editor_client"])
@pytest.mark.parametrize("name", READ_URLS)
def test_every_role_reads_the_mapping_pages(request, persona, draft, name):
    assert request.getfixturevalue(persona).get(read_url(name, draft)).status_code == 200


@pytest.mark.parametrize("persona", ["auditor_client", "operator_client"])
def test_readers_are_refused_every_write_and_nothing_changes(request, persona, draft, active):
    client = request.getfixturevalue(persona)
    before = list(SchemaMappingDefinition.objects.order_by("version").values())
    rows_before = field_rows(draft)
    assert client.get(url("edit", draft.pk)).status_code == 403
    assert client.post(url("edit", draft.pk), {}).status_code == 403
    assert client.post(url("clone", active.pk)).status_code == 403
    assert client.post(url("activate", draft.pk)).status_code == 403
    assert client.get(url("import")).status_code == 403
    assert client.post(url("import"), {"text": "version: 1", "dry_run": "on"}).status_code == 403
    assert list(SchemaMappingDefinition.objects.order_by("version").values()) == before
    assert field_rows(draft) == rows_before


def test_readers_see_no_edit_clone_or_activate_button(auditor_client, draft):
    text = html(auditor_client.get(url("detail", draft.pk)))
    assert url("edit", draft.pk) not in text
    assert url("clone", draft.pk) not in text
    assert url("activate", draft.pk) not in text
    assert url("validate", draft.pk) in text  # reading what is wrong is for everyone


def test_editor_sees_edit_clone_and_activate_on_a_draft(editor_client, draft):
    text = html(editor_client.get(url("detail", draft.pk)))
    for name in ("edit", "clone", "activate"):
        assert url(name, draft.pk) in text


def test_clone_and_activate_answer_get_with_405(editor_client, draft):
    assert editor_client.get(url("clone", draft.pk)).status_code == 405
    assert editor_client.get(url("activate", draft.pk)).status_code == 405


# --------------------------------------------------------------------------- list and page


def test_list_shows_the_active_version_of_each_entity_and_the_others(auditor_client, draft, active):
    other = SchemaMappingDefinitionFactory(entity_type="office", active=True)
    text = html(auditor_client.get(url("list")))
    assert f'<a href="{url("detail", active.pk)}">v1</a>' in text
    assert f'<a href="{url("detail", draft.pk)}">v2</a> <span class="muted">(draft)</span>' in text
    assert f'<a href="{url("detail", other.pk)}">v1</a>' in text
    assert url("diff", ENTITY) in text


def test_definition_page_shows_fields_rules_and_functions_as_tables(auditor_client, active):
    text = html(auditor_client.get(url("detail", active.pk)))
    assert '<td class="mono">trim</td>' in row(text, "data-field", "name")
    assert '<td class="mono">email</td>' in row(text, "data-field", "email")
    assert "format" in re.search(r'<table class="list rows rules">.*?</table>', text, re.S).group(0)
    assert "This version has been active" in text


# --------------------------------------------------------------------------- editing


def test_editor_edits_a_draft_field_row_through_the_formset(editor_client, draft):
    page = editor_client.get(url("edit", draft.pk))
    assert page.status_code == 200
    data = edit_post_data(page)
    name = form_index(page, "fields", "name")
    data[f"fields-{name}-transformation"] = "upper(trim(value))"
    data["max_delete_share"] = "0.2"

    response = editor_client.post(url("edit", draft.pk), data)

    assert response.status_code == 302, response.context and [
        f.errors for f in response.context["formsets"]["fields"]
    ]
    assert response["Location"] == url("edit", draft.pk)
    assert ("name", "name", "upper(trim(value))") in field_rows(draft)
    draft.refresh_from_db()
    assert draft.max_delete_share == 0.2
    assert draft.content_fingerprint == ""  # outdated by the edit; activation recomputes it
    assert (draft.version, draft.is_active) == (2, False)


def test_editor_adds_and_deletes_rows(editor_client, draft):
    page = editor_client.get(url("edit", draft.pk))
    data = edit_post_data(page)
    data[f"fields-{form_index(page, 'fields', 'email')}-DELETE"] = "on"
    data[f"rules-{form_index(page, 'rules', 'email')}-DELETE"] = "on"
    total = page.context["formsets"]["fields"].initial_form_count()
    data["fields-TOTAL_FORMS"] = total + 1
    data.update(
        {
            f"fields-{total}-position": "5",
            f"fields-{total}-destination_field": "email",
            f"fields-{total}-expression": "lower(email)",
            f"fields-{total}-default_value": "",
        }
    )

    response = editor_client.post(url("edit", draft.pk), data)

    assert response.status_code == 302
    assert field_rows(draft) == [
        ("id", "legacy_id", ""),
        ("name", "name", "trim"),
        ("", "email", ""),
    ]
    assert FieldMapping.objects.get(definition=draft, destination_field="email").expression == (
        "lower(email)"
    )
    assert not ValidationRule.objects.filter(definition=draft).exists()


def test_invalid_cells_are_refused_and_nothing_is_stored(editor_client, draft):
    page = editor_client.get(url("edit", draft.pk))
    data = edit_post_data(page)
    email = form_index(page, "rules", "email")
    data[f"rules-{email}-rule_type"] = "range"
    data[f"rules-{email}-min"] = "soon"
    before = list(ValidationRule.objects.filter(definition=draft).values())

    response = editor_client.post(url("edit", draft.pk), data)

    assert response.status_code == 400
    assert "min: write a number, a date (2024-01-31) or today." in html(response)
    assert list(ValidationRule.objects.filter(definition=draft).values()) == before


def test_an_active_definition_cannot_be_edited(editor_client, active):
    before = field_rows(active)
    response = editor_client.get(url("edit", active.pk))
    assert response.status_code == 302 and response["Location"] == url("detail", active.pk)
    response = editor_client.post(url("edit", active.pk), {"fields-TOTAL_FORMS": "0"}, follow=True)
    assert "has been active: its content cannot change" in html(response)
    assert field_rows(active) == before


def test_column_pickers_list_the_introspected_columns(editor_client, draft):
    text = html(editor_client.get(url("edit", draft.pk)))
    name = row(text, "data-field", "name")
    source = re.search(r'<select name="fields-\d+-source_field".*?</select>', name, re.S).group(0)
    assert re.findall(r'<option value="(\w*)"', source) == ["", "id", "name", "email"]
    assert re.search(r'<option value="name" selected>', source)
    destination = re.search(r'<select name="fields-\d+-destination_field".*?</select>', name, re.S)
    assert re.findall(r'<option value="(\w*)"', destination.group(0)) == [
        "",
        "id",
        "legacy_id",
        "name",
        "email",
    ]


def test_unreachable_database_falls_back_to_free_text_with_a_warning(editor_client, draft):
    ConnectionFactory(name="offline", url="postgresql://nobody@127.0.0.1:1/gone")
    SchemaMappingDefinition.objects.filter(pk=draft.pk).update(source_connection="offline")
    text = html(editor_client.get(url("edit", draft.pk)))
    assert "source database &#x27;offline&#x27; cannot be read" in text
    name = row(text, "data-field", "name")
    assert re.search(r'<input type="text" name="fields-\d+-source_field" value="name"', name)
    assert re.search(r'<select name="fields-\d+-destination_field"', name)  # still reachable


# --------------------------------------------------------------------------- validate


def test_save_and_validate_shows_each_problem_next_to_its_row(editor_client, draft):
    page = editor_client.get(url("edit", draft.pk))
    data = edit_post_data(page)
    data[f"fields-{form_index(page, 'fields', 'email')}-transformation"] = "no_such_function(value)"
    data[f"fields-{form_index(page, 'fields', 'name')}-DELETE"] = "on"
    data["validate"] = "1"

    response = editor_client.post(url("edit", draft.pk), data, follow=True)

    assert response.redirect_chain[-1][0] == url("edit", draft.pk) + "?validate=1"
    text = html(response)
    email = row(text, "data-field", "email")
    assert 'class="has-problems"' in email
    assert "no_such_function" in re.search(r'<td class="problems">.*?</td>', email, re.S).group(0)
    legacy = row(text, "data-field", "legacy_id")
    assert '<td class="problems"><span class="ok">' in legacy
    # The NOT NULL column no field fills any more names no row: it is listed on top.
    top = re.search(r'<ul class="problems entity-problems">.*?</ul>', text, re.S).group(0)
    assert "&#x27;name&#x27; is NOT NULL with no default and no field fills it" in top


def test_validate_of_a_good_definition_says_so(auditor_client, active):
    text = html(auditor_client.get(url("validate", active.pk)))
    assert "Validation passed" in text and "tables and columns included" in text


def test_validate_answers_htmx_with_the_rows_fragment(auditor_client, draft):
    FieldMapping.objects.filter(definition=draft, destination_field="email").update(
        source_field="mail"
    )
    response = auditor_client.get(url("validate", draft.pk), HTTP_HX_REQUEST="true")
    text = html(response).strip()
    assert text.startswith('<div id="definition-rows">') and "<html" not in text
    email = row(text, "data-field", "email")
    assert "source column &#x27;mail&#x27; does not exist in source table" in email


# --------------------------------------------------------------------------- preview


def test_preview_marks_a_validation_failure_next_to_its_row(auditor_client, draft):
    response = auditor_client.get(url("preview", draft.pk), {"limit": "3"})
    assert response.status_code == 200
    text = html(response)
    ann = row(text, "data-key", "1")
    assert 'class="passes"' in ann and "ann@x.org" in ann
    bob = row(text, "data-key", "2")
    assert 'class="fails"' in bob
    assert '<dd class="mono failing">not-an-email <span class="error">← fails format' in bob
    assert "fails format on email" in bob
    assert 'class="passes"' in row(text, "data-key", "3")


def test_preview_shows_the_draft_not_the_active_version(auditor_client, draft):
    FieldMapping.objects.filter(definition=draft, destination_field="name").update(
        transformation="upper(trim(value))"
    )
    text = html(auditor_client.get(url("preview", draft.pk), HTTP_HX_REQUEST="true"))
    assert text.strip().startswith('<div id="preview-result">')
    assert '<dd class="mono">ANN</dd>' in row(text, "data-key", "1")


def test_preview_refuses_a_bad_limit(auditor_client, draft):
    assert auditor_client.get(url("preview", draft.pk), {"limit": "0"}).status_code == 400


# --------------------------------------------------------------------------- clone, activate


def test_clone_makes_the_next_version_a_draft_with_copied_rows(editor_client, active):
    response = editor_client.post(url("clone", active.pk))
    copy = SchemaMappingDefinition.objects.get(entity_type=ENTITY, version=2)
    assert response["Location"] == url("edit", copy.pk)
    assert (copy.is_active, copy.activated_at) == (False, None)
    assert field_rows(copy) == field_rows(active)


def test_activate_leaves_one_active_version(editor_client, active, draft):
    response = editor_client.post(url("activate", draft.pk), follow=True)
    assert "v2 is now the active definition" in html(response)
    assert list(
        SchemaMappingDefinition.objects.filter(entity_type=ENTITY, is_active=True).values_list(
            "version", flat=True
        )
    ) == [2]
    active.refresh_from_db()
    assert active.activated_at is not None  # retired, still frozen


def test_activating_a_draft_with_problems_changes_nothing_and_shows_them(editor_client, draft):
    FieldMapping.objects.filter(definition=draft, destination_field="email").update(
        transformation="no_such_function(value)"
    )
    response = editor_client.post(url("activate", draft.pk), follow=True)
    assert response.redirect_chain[-1][0] == url("validate", draft.pk)
    text = html(response)
    assert "Not activated" in text
    assert "no_such_function" in row(text, "data-field", "email")
    assert SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True).version == 1


# --------------------------------------------------------------------------- diff


def test_diff_lists_fields_rules_functions_and_settings_added_removed_changed(
    auditor_client, draft
):
    FieldMapping.objects.filter(definition=draft, destination_field="name").update(
        transformation="upper(value)"
    )
    FieldMapping.objects.filter(definition=draft, destination_field="email").delete()
    FieldMappingFactory(
        definition=draft, source_field="email", destination_field="mail", position=9
    )
    ValidationRule.objects.filter(definition=draft).delete()
    SchemaMappingDefinition.objects.filter(pk=draft.pk).update(max_delete_share=0.2)
    draft.transformation_functions.create(name="shout", function_body="upper(x)")

    text = html(auditor_client.get(url("diff", ENTITY), {"a": "1", "b": "2"}))

    fields = re.search(r'id="diff-fields">.*?</section>', text, re.S).group(0)
    assert 'class="diff-changed" data-key="name"' in fields
    assert re.search(r'data-key="name">.*?transformation.*?trim.*?upper\(value\)', fields, re.S)
    assert 'class="diff-removed" data-key="email"' in fields
    assert 'class="diff-added" data-key="mail"' in fields
    assert "1 unchanged" in fields  # legacy_id
    rules = re.search(r'id="diff-rules">.*?</section>', text, re.S).group(0)
    assert 'class="diff-removed" data-key="email: format"' in rules
    functions = re.search(r'id="diff-functions">.*?</section>', text, re.S).group(0)
    assert 'class="diff-added" data-key="shout"' in functions
    settings = re.search(r'id="diff-settings">.*?</section>', text, re.S).group(0)
    assert re.findall(r'data-key="(\w+)"', settings) == ["max_delete_share"]
    assert "0.05" in settings and "0.2" in settings


def test_diff_of_an_unchanged_clone_is_empty(auditor_client, draft):
    text = html(auditor_client.get(url("diff", ENTITY), {"a": "1", "b": "2"}))
    assert "The two versions have the same content." in text


def test_diff_compares_the_active_version_with_the_newest_by_default(auditor_client, draft):
    diff = auditor_client.get(url("diff", ENTITY)).context["diff"]
    assert (diff.a.version, diff.b.version) == (1, 2)
    diff = auditor_client.get(url("diff", ENTITY), {"b": "1"}).context["diff"]
    assert (diff.a.version, diff.b.version) == (2, 1)


def test_diff_of_an_unknown_version_is_404(auditor_client, draft):
    assert auditor_client.get(url("diff", ENTITY), {"a": "1", "b": "7"}).status_code == 404
    assert auditor_client.get(url("diff", "nobody")).status_code == 404


# --------------------------------------------------------------------------- export, import


def test_export_is_the_active_mappings_as_yaml(auditor_client, draft):
    response = auditor_client.get(url("export"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml; charset=utf-8"
    assert response.content.decode() == export_mapping_text()
    assert "name: person" in response.content.decode()


def test_export_of_an_unknown_entity_is_404(auditor_client, people):
    assert auditor_client.get(url("export"), {"entity": "nobody"}).status_code == 404


def test_import_dry_run_checks_and_stores_nothing(editor_client, people):
    text = people.mapping_text.replace("transform: trim", "transform: upper")
    response = editor_client.post(url("import"), {"text": text, "dry_run": "on"})
    assert response.status_code == 200
    assert "person: would be stored as version 2 (active)" in html(response)
    assert SchemaMappingDefinition.objects.filter(entity_type=ENTITY).count() == 1


def test_import_of_an_uploaded_file_stores_a_new_active_version(editor_client, people):
    upload = SimpleUploadedFile(
        "people.yaml", people.mapping_text.replace("transform: trim", "transform: upper").encode()
    )
    response = editor_client.post(url("import"), {"file": upload})
    assert "person: stored as version 2 (active)" in html(response)
    active = SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True)
    assert active.version == 2 and active.created_by == "editor"


def test_export_then_import_creates_nothing_new(editor_client, people):
    text = editor_client.get(url("export")).content.decode()
    response = editor_client.post(url("import"), {"text": text})
    assert "person: unchanged (version 1)" in html(response)
    assert SchemaMappingDefinition.objects.filter(entity_type=ENTITY).count() == 1


def test_import_lists_each_problem_by_entity_and_field_and_stores_nothing(editor_client, people):
    text = people.mapping_text.replace("{source: name,", "{source: nom,").replace(
        "{source: id,", "{source: ident,"
    )
    response = editor_client.post(url("import"), {"text": text})
    assert response.status_code == 400
    page = html(response)
    assert "Refused: nothing was stored" in page
    name = row(page, 'data-entity="person" data-field', "name")
    assert "source column &#x27;nom&#x27; does not exist" in name
    legacy_id = row(page, 'data-entity="person" data-field', "legacy_id")
    assert "source column &#x27;ident&#x27; does not exist" in legacy_id
    assert SchemaMappingDefinition.objects.filter(entity_type=ENTITY).count() == 1


def test_import_of_a_structurally_bad_file_names_the_field(editor_client, people):
    text = people.mapping_text.replace("transform: email}", "transform: 'nope(value)'}")
    response = editor_client.post(url("import"), {"text": text, "dry_run": "on"})
    assert response.status_code == 400
    assert "nope" in row(html(response), 'data-entity="person" data-field', "email")


def test_import_needs_a_file_or_text(editor_client, people):
    response = editor_client.post(url("import"), {"dry_run": "on"})
    assert response.status_code == 400
    assert "Give either a file or the text" in html(response)
