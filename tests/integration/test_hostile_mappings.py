"""Hostile mappings through the real entry points: `diffmig mappings import` (exit 2, one line
naming entity and field, nothing stored), and the web editor's validate, preview and import.

Runs over the two SQLite databases of ``tests.support.people`` (embedded-capable).
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils.html import escape

from migrationsapp.models import FieldMapping, SchemaMappingDefinition, ValidationRule
from migrationsapp.services.mapping_versions import clone_definition
from migrationsapp.services.mappings import export_mapping_text
from tests.integration.conftest import cli
from tests.support.people import ENTITY
from tests.support.reliability import record

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

LINEAR = "patterns are RE2 syntax, matched in linear time"
TOO_BIG = (
    "the result would hold more than 100000 elements and characters "
    "(nested and repeated ones counted)"
)
NAME_FIELD = "{source: name, destination: name, transform: trim}"
EMAIL_RULE = "{field: email, rule: format, params: {pattern: email}}"
DOUBLING = (
    "functions:\n"
    + "".join(f'  f{i}: "f{i + 1}(x=x) + f{i + 1}(x=x)"\n' for i in range(1, 15))
    + '  f15: "x"\nentities:'
)


def quoted(text: str) -> str:
    """``text`` as a YAML single-quoted scalar: backslashes stay as written."""
    return "'" + text.replace("'", "''") + "'"


def transform(text: str, reason: str) -> tuple[tuple[str, str], str]:
    field = f"{{source: name, destination: name, transform: {quoted(text)}}}"
    return (NAME_FIELD, field), f"entity 'person', field 'name': transform {text!r}: {reason}"


def expression(text: str, reason: str) -> tuple[tuple[str, str], str]:
    field = f"{{destination: name, expression: {quoted(text)}}}"
    return (NAME_FIELD, field), f"entity 'person', field 'name': expression {text!r}: {reason}"


def format_rule(pattern: str, reason: str) -> tuple[tuple[str, str], str]:
    rule = f"{{field: email, rule: format, params: {{pattern: {quoted(pattern)}}}}}"
    line = f"entity 'person', field 'email': format: the pattern {pattern!r} is refused: {reason}"
    return (EMAIL_RULE, rule), line


# (what the file says instead, the line the refusal must print). Inside an expression, a
# pattern is a string literal: "(\w)\\1" there is the pattern (\w)\1.
HOSTILE_FILES = [
    transform(
        r'regex_replace(value, "(\w)\\1", "")',
        rf"regex_replace(): invalid pattern '(\\w)\\1': backreferences (\1) are not supported: "
        f"{LINEAR}",
    ),
    transform(
        'regex_replace(value, "a(?=b)", "")',
        f"regex_replace(): invalid pattern 'a(?=b)': lookaround (?=…) is not supported: {LINEAR}",
    ),
    transform(
        r'regex_replace(value, "(a)", "\\2")',
        r"regex_replace(): the replacement '\\2' uses group 2, but the pattern '(a)' has 1",
    ),
    transform("map(value, {((1,)*99999,)*99999: 1})", f"always fails: {TOO_BIG}"),
    format_rule("(?<=@)x", f"lookaround (?<=…) is not supported: {LINEAR}"),
    format_rule(r"(\w+)@\1", rf"backreferences (\1) are not supported: {LINEAR}"),
    expression("str([[1]*99999]*99999)", f"always fails: {TOO_BIG}"),
    expression("[[1]*1000]*1000 == [[1]*1000]*1000", f"always fails: {TOO_BIG}"),
    expression(
        "[" * 21 + "1" + "]" * 21,
        "always fails: the result would be nested more than 20 levels deep",
    ),
    (
        ("entities:", DOUBLING),
        "function 'f5': one evaluation would take 8185 steps (a named function counts all of "
        "its own steps at every call); the limit is 5000",
    ),
]


def test_import_refuses_each_hostile_file_with_exit_2_and_one_line_naming_it(people, tmp_path):
    before = export_mapping_text()
    tried = 0
    for (old, new), line in HOSTILE_FILES:
        text = people.mapping_text.replace(old, new)
        assert text != people.mapping_text, old
        path = tmp_path / f"hostile{tried}.yaml"
        path.write_text(text, encoding="utf-8")
        for args in (("--dry-run",), ()):
            refused = cli("mappings", "import", str(path), *args)
            assert refused.code == 2, (new, refused.out, refused.err)
            assert f"  {line}" in refused.err.splitlines(), (line, refused.err)
        tried += 1
    assert SchemaMappingDefinition.objects.filter(entity_type=ENTITY).count() == 1
    assert export_mapping_text() == before
    record(
        "hostile mapping",
        "hostile regexes, folded values and named functions in a mapping file",
        tried=tried,
        held=tried,
        outcome="`mappings import` exits 2 with a line naming entity and field (or the "
        "function); nothing stored",
    )


# --------------------------------------------------------------------------- the web editor


@pytest.fixture
def draft(people, editor) -> SchemaMappingDefinition:
    active = SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True)
    return clone_definition(definition_id=active.pk, user=editor)


def row(text: str, field: str) -> str:
    rows = re.findall(rf'<tr data-field="{field}"[^>]*>.*?</tr>', text, re.S)
    assert len(rows) == 1, (field, rows)
    return rows[0]


def test_validate_shows_hostile_patterns_and_expressions_next_to_their_rows(auditor_client, draft):
    FieldMapping.objects.filter(definition=draft, destination_field="name").update(
        transformation=r'regex_replace(value, "(\w)\\1", "")'
    )
    FieldMapping.objects.filter(definition=draft, destination_field="email").update(
        transformation="map(value, {((1,)*99999,)*99999: 1})"
    )
    ValidationRule.objects.create(
        definition=draft,
        position=9,
        field_name="name",
        rule_type="format",
        rule_parameters={"pattern": "(?<!x)y"},
    )
    text = auditor_client.get(reverse("mappings:validate", args=[draft.pk])).content.decode()
    name, email = row(text, "name"), row(text, "email")
    rule = re.findall(r'<tr data-rule="name"[^>]*>.*?</tr>', text, re.S)[0]
    assert escape(r"invalid pattern '(\\w)\\1': backreferences (\1) are not supported") in name
    # A rule's problem is shown on the rule's own row.
    assert escape("the pattern '(?<!x)y' is refused: lookaround (?<!…) is not supported") in rule
    assert escape(f"always fails: {TOO_BIG}") in email
    record(
        "web",
        "hostile regexes and folded values in the mapping editor's validate",
        tried=3,
        held=3,
        outcome="each refusal shown next to its row",
    )


def test_preview_runs_a_catastrophic_pattern_on_a_long_value_and_marks_the_row(
    auditor_client, people, draft
):
    hostile = "a" * 5000 + "!"
    people.legacy_sql("UPDATE people SET name = :name WHERE id = 1", name=hostile)
    FieldMapping.objects.filter(definition=draft, destination_field="name").update(
        transformation="regex_replace(value, '(a+)+$', 'x')"
    )
    ValidationRule.objects.create(
        definition=draft,
        position=9,
        field_name="name",
        rule_type="format",
        rule_parameters={"pattern": "(a+)+b"},
    )
    response = auditor_client.get(reverse("mappings:preview", args=[draft.pk]), {"limit": "3"})
    assert response.status_code == 200
    rows = re.findall(r'<tr data-key="1"[^>]*>.*?</tr>', response.content.decode(), re.S)
    assert len(rows) == 1
    assert 'class="fails"' in rows[0] and "fails format on name" in rows[0]
    record(
        "web",
        "preview of a catastrophic-backtracking regex on a long source value",
        tried=2,
        held=2,
        outcome="the page answers (RE2) and marks the row failing its format rule",
    )


def test_import_page_refuses_a_hostile_file_naming_entity_and_field(editor_client, people):
    (old, new), line = HOSTILE_FILES[0]
    response = editor_client.post(
        reverse("mappings:import"), {"text": people.mapping_text.replace(old, new)}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Refused: nothing was stored" in page
    assert escape(line.split(": transform ", 1)[1].split(": ", 1)[1]) in page
    assert SchemaMappingDefinition.objects.filter(entity_type=ENTITY).count() == 1
