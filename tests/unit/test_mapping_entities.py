"""Refusals of one entity and of its fields: names, settings, keys, references, dependencies,
expressions, functions and validation rules (no database)."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from migrationsapp.engine.errors import MappingError, MappingProblem
from migrationsapp.engine.mapping import check_entity, check_structure, load_mapping_yaml
from migrationsapp.engine.validation import RuleSpec
from tests.unit.mapping_support import BASIC, EXAMPLE, HEAD, one_entity, only_problem, problems_of

# --------------------------------------------------------------------------- entity refusals


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Office", "entity name 'Office' may use only a-z, 0-9 and _"),
        ("my-office", "entity name 'my-office' may use only a-z, 0-9 and _"),
        ("self", "'self' cannot name an entity: `reference: self` means the entity itself"),
    ],
)
def test_entity_name_must_be_lower_case_word(name: str, reason: str) -> None:
    assert only_problem(one_entity(BASIC).replace("name: e", f"name: {name}")) == (
        name,
        None,
        reason,
    )


def test_entity_without_name_is_refused_by_position() -> None:
    text = HEAD + "entities:\n  - {source_table: t, source_key: [id], destination_table: d}\n"

    assert only_problem(text) == ("#1", None, "an entity needs a name")


def test_duplicate_entity_names_are_refused() -> None:
    text = one_entity(BASIC) + "  - name: e\n" + textwrap.indent(BASIC, "    ")

    assert only_problem(text) == ("e", None, "entity name 'e' is used more than once")


def test_required_entity_settings_are_reported_together() -> None:
    assert problems_of(one_entity("fields: []\n")) == [
        ("e", None, "source_table is required"),
        ("e", None, "destination_table is required"),
        ("e", None, "source_key must list at least one column"),
    ]


def test_wrong_types_are_reported_once_each() -> None:
    text = one_entity(
        """\
        source_table: [t]
        source_key: {id: 1}
        destination_table: d
        max_delete_share: lots
        fields:
          - {source: a, destination: a, required: maybe}
          - just-a-string
        """
    )

    assert problems_of(text) == [
        ("e", None, "max_delete_share must be a number, not str 'lots'"),
        ("e", "a", "required must be true or false, not str 'maybe'"),
        (
            "e",
            "#2",
            "a field is a mapping like {source: x, destination: y}, not str 'just-a-string'",
        ),
        ("e", None, "source_table must be text, not list ['t']"),
        ("e", None, "source_key must be a list of names, not dict {'id': 1}"),
    ]


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ("detection: diff\n", "detection must be one of hash, timestamp, hybrid, not 'diff'"),
        ("detection: timestamp\n", "detection 'timestamp' needs timestamp_column"),
        ("detection: hybrid\n", "detection 'hybrid' needs timestamp_column"),
        ("deletes: never\n", "deletes must be one of hard, soft, report, not 'never'"),
        ("deletes: soft\n", "deletes 'soft' needs soft_delete_column"),
        ("max_delete_share: 1.5\n", "max_delete_share must be between 0 and 1, not 1.5"),
        ("max_delete_share: -0.1\n", "max_delete_share must be between 0 and 1, not -0.1"),
        ("source_key: [id, id]\n", "source_key lists 'id' more than once"),
    ],
)
def test_entity_settings_are_checked(lines: str, reason: str) -> None:
    text = one_entity(
        BASIC.replace("source_key: [id]\n", "")
        + (lines if "source_key" in lines else "source_key: [id]\n" + lines)
    )

    assert only_problem(text) == ("e", None, reason)


def test_share_bounds_and_timestamp_detection_with_column_are_accepted() -> None:
    parsed = [
        load_mapping_yaml(one_entity(BASIC + lines)).entities[0]
        for lines in (
            "max_delete_share: 0\n",
            "max_delete_share: 1\n",
            "detection: timestamp\ntimestamp_column: t\n",
        )
    ]

    assert [(e.max_delete_share, e.detection, e.timestamp_column) for e in parsed] == [
        (0, "hash", None),
        (1, "hash", None),
        (0.05, "timestamp", "t"),
    ]


def test_unknown_keys_in_entity_field_and_rule_list_the_allowed_keys() -> None:
    text = one_entity(
        """\
        source_table: t
        source_key: [id]
        destination_table: d
        depends: []
        fields:
          - {soruce: a, destination: a}
        validation:
          - {field: a, rule: required, parms: {}}
        """
    )

    assert problems_of(text) == [
        (
            "e",
            None,
            "unknown key 'depends' in an entity; allowed keys: name, source_table, source_key, "
            "destination_table, destination_key, depends_on, detection, timestamp_column, deletes, "
            "soft_delete_column, max_delete_share, match_on, fields, validation",
        ),
        (
            "e",
            "a",
            "unknown key 'soruce' in a field; "
            "allowed keys: source, destination, expression, required, default, reference, "
            "transform",
        ),
        ("e", "a", "unknown key 'parms' in a validation rule; allowed keys: field, rule, params"),
        ("e", "a", "a field needs source or expression (or a default, for a constant)"),
    ]


# --------------------------------------------------------------------------- field refusals


def test_field_has_exactly_one_of_source_and_expression() -> None:
    text = one_entity(
        """\
        source_table: t
        source_key: [id]
        destination_table: d
        fields:
          - {source: a, expression: "b + 1", destination: a}
          - {destination: b}
          - {destination: c, default: 0}
          - {destination: f, default: null}
          - {expression: "trim(b)", transform: upper, destination: g}
          - {source: b, transform: trim, destination: h}
        """
    )

    assert problems_of(text) == [
        ("e", "a", "a field has either source or expression, not both"),
        ("e", "b", "a field needs source or expression (or a default, for a constant)"),
    ]


def test_destination_fields_are_unique_and_exclude_the_destination_key() -> None:
    text = one_entity(
        """\
        source_table: t
        source_key: [id]
        destination_table: d
        fields:
          - {source: id, destination: id}
          - {source: a, destination: a}
          - {source: b, destination: a}
          - {source: c}
        """
    )

    assert problems_of(text) == [
        (
            "e",
            "id",
            "'id' is the destination_key, which diffmig fills; "
            "map the legacy key to another column (e.g. legacy_id)",
        ),
        ("e", "a", "destination 'a' is filled by more than one field"),
        ("e", "#4", "a field needs a destination"),
    ]


def test_reference_names_an_entity_in_depends_on_or_self() -> None:
    text = EXAMPLE.replace("depends_on: [office]", "depends_on: []").replace(
        "{source: email, destination: email, transform: email}",
        "{source: email, destination: email, transform: email}\n"
        "      - {source: mentor_id, destination: mentor_id, reference: self}",
    )

    assert only_problem(text) == (
        "doctor",
        "office_id",
        "reference 'office' must be 'self' or an entity listed in depends_on",
    )


def test_depends_on_must_name_known_entities_and_not_itself() -> None:
    text = EXAMPLE.replace("depends_on: [office]", "depends_on: [office, doctor, clinic]")

    assert problems_of(text) == [
        (
            "doctor",
            None,
            "an entity cannot depend on itself "
            "(a field pointing at its own rows uses `reference: self`)",
        ),
        ("doctor", None, "depends_on names 'clinic', which is not an entity of this mapping"),
    ]


def test_depends_on_cycle_is_refused_naming_the_cycle() -> None:
    text = EXAMPLE.replace("depends_on: []", "depends_on: [doctor]")

    assert only_problem(text) == (
        "office",
        None,
        "depends_on has a cycle: office -> doctor -> office",
    )


def test_expression_transform_and_function_errors_name_the_field() -> None:
    text = EXAMPLE.replace("transform: trim}", "transform: shout}").replace(
        "'yes' if active_flag == 'Y' else 'no'", "active_flag.lower()"
    )
    text = text.replace("title(trim(last))", "title(trim(last)")

    assert problems_of(text) == [
        (
            None,
            None,
            "function 'full_name': does not parse: '(' was never closed (column 33)",
        ),
        ("office", "name", "transform 'shout': unknown function 'shout'"),
        (
            "doctor",
            "full_name",
            "expression 'full_name(first=first_name, last=last_name)': "
            "unknown function 'full_name'",
        ),
        (
            "doctor",
            "is_active",
            "expression 'active_flag.lower()': only library functions may be called, by name; "
            "attribute access (`.lower`) is not allowed",
        ),
    ]


def test_a_bad_function_does_not_hide_the_good_ones_that_call_each_other() -> None:
    functions = 'functions:\n  inner: "trim(x)"\n  outer: "inner(x=y) + \'!\'"\n  bad: "x.y"\n'
    text = one_entity(
        BASIC.replace("{source: a, destination: a}", '{destination: a, expression: "outer(y=a)"}'),
        functions=functions,
    )

    assert only_problem(text) == (
        None,
        None,
        "function 'bad': attribute access (`.y`) is not allowed",
    )


def test_validation_rule_problems_come_from_the_rule_compiler() -> None:
    text = EXAMPLE.replace(
        "{field: full_name, rule: required}", "{field: fullname, rule: required}"
    )
    text = text.replace("{field: email, rule: unique}", "{field: email, rule: distinct}")

    assert problems_of(text) == [
        ("doctor", "fullname", "required: 'fullname' is not a destination field of this entity"),
        (
            "doctor",
            "email",
            "unknown rule 'distinct'; expected one of required, unique, format, range",
        ),
    ]


def test_rule_dates_are_kept_as_iso_text_that_the_rule_compiler_reads() -> None:
    text = one_entity(
        BASIC + "validation:\n  - {field: a, rule: range, params: {min: 2000-01-01, max: today}}\n"
    )

    rule = load_mapping_yaml(text).entities[0].validation[0]
    assert rule == RuleSpec(field="a", rule="range", params={"min": "2000-01-01", "max": "today"})


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = EXAMPLE.replace("version: 1", "version: 3")
    text = text.replace("${DIFFMIG_TARGET_URL}", "${DATABASE_URL}")
    text = text.replace("deletes: hard", "deletes: soft\n    soruce_table: x").replace(
        "    soft_delete_column: deleted_at\n", ""
    )
    text = text.replace(
        "{source: id, destination: legacy_id}",
        "{source: id, destination: legacy_id, reference: doctor}",
    )
    text = text.replace("depends_on: [office]", "depends_on: [office, patient]")

    assert problems_of(text) == [
        (
            "office",
            None,
            "unknown key 'soruce_table' in an entity; allowed keys: "
            + ", ".join(
                [
                    "name",
                    "source_table",
                    "source_key",
                    "destination_table",
                    "destination_key",
                    "depends_on",
                    "detection",
                    "timestamp_column",
                    "deletes",
                    "soft_delete_column",
                    "max_delete_share",
                    "match_on",
                    "fields",
                    "validation",
                ]
            ),
        ),
        (None, None, "version 3 is not supported; this diffmig reads version: 1"),
        (
            None,
            None,
            "connection 'target': ${DATABASE_URL} is refused: "
            "only variables whose names begin with DIFFMIG_ are expanded",
        ),
        ("office", None, "deletes 'soft' needs soft_delete_column"),
        (
            "office",
            "legacy_id",
            "reference 'doctor' must be 'self' or an entity listed in depends_on",
        ),
        ("doctor", None, "depends_on names 'patient', which is not an entity of this mapping"),
    ]


def test_check_structure_reports_problems_of_a_hand_built_mapping() -> None:
    mapping = load_mapping_yaml(EXAMPLE)
    broken = dataclasses.replace(
        mapping,
        source="nowhere",
        entities=(
            dataclasses.replace(mapping.entities[0], detection="timestamp", timestamp_column=None),
        ),
    )

    check_structure(mapping)
    with pytest.raises(MappingError) as caught:
        check_structure(broken)
    assert caught.value.problems == [
        MappingProblem(
            entity=None,
            field=None,
            reason="source 'nowhere' is not a connection of this file "
            "(connections: legacy, target)",
        ),
        MappingProblem(
            entity="office", field=None, reason="detection 'timestamp' needs timestamp_column"
        ),
    ]


def test_check_entity_uses_known_entities_when_given() -> None:
    doctor = load_mapping_yaml(EXAMPLE).entities[1]

    assert check_entity(doctor) == []
    assert check_entity(doctor, known_entities=["doctor"]) == [
        MappingProblem(
            entity="doctor",
            field=None,
            reason="depends_on names 'office', which is not an entity of this mapping",
        )
    ]
