"""The order entities run in (dependencies), and what a mapping hashes: the columns of a
record's content hash and the fingerprint of an entity's mapping (no database)."""

from __future__ import annotations

import dataclasses

import pytest

from migrationsapp.engine.errors import MappingError, MappingProblem
from migrationsapp.engine.mapping import (
    EntitySpec,
    FieldSpec,
    content_fingerprint,
    dependency_order,
    hashed_columns,
    load_mapping_yaml,
    mapping_to_yaml,
    used_functions,
)
from migrationsapp.engine.transforms import compile_functions
from tests.unit.mapping_support import EXAMPLE, FULL_NAME

# --------------------------------------------------------------------------- dependencies


def entity(name: str, *depends_on: str) -> EntitySpec:
    return EntitySpec(
        name=name,
        source_table=name,
        source_key=("id",),
        destination_table=name,
        depends_on=depends_on,
    )


def test_dependency_order_puts_parents_first_and_keeps_file_order_among_equals() -> None:
    entities = [
        entity("appointment", "patient", "doctor"),
        entity("doctor", "office"),
        entity("audit"),
        entity("patient", "doctor"),
        entity("office"),
    ]

    assert dependency_order(entities) == ["audit", "office", "doctor", "patient", "appointment"]


def test_dependency_order_refuses_a_cycle_naming_it() -> None:
    entities = [entity("a"), entity("b", "a", "d"), entity("c", "b"), entity("d", "c")]

    with pytest.raises(MappingError) as caught:
        dependency_order(entities)
    assert caught.value.problems == [
        MappingProblem(entity="b", field=None, reason="depends_on has a cycle: b -> d -> c -> b")
    ]


def test_dependency_order_treats_self_dependency_as_a_cycle() -> None:
    with pytest.raises(MappingError) as caught:
        dependency_order([entity("a", "a")])
    assert str(caught.value) == "entity 'a': depends_on has a cycle: a -> a"


# --------------------------------------------------------------------------- hashing and content


def test_hashed_columns_are_key_sources_and_expression_names_only() -> None:
    mapping = load_mapping_yaml(
        EXAMPLE.replace("source_key: [id]", "source_key: [office_id, id]", 1)
    )
    office, doctor = mapping.entities
    library = compile_functions(mapping.functions)

    # updated_at (timestamp) and notes are not mapped: touching them is not a modification.
    assert hashed_columns(office, library) == ("office_id", "id", "name", "opened", "phone")
    assert hashed_columns(doctor, library) == (
        "id",
        "active_flag",
        "email",
        "first_name",
        "last_name",
        "office_id",
    )
    assert hashed_columns(doctor) == hashed_columns(doctor, library)


def test_hashed_columns_include_the_timestamp_when_a_field_maps_it() -> None:
    office = load_mapping_yaml(
        EXAMPLE.replace(
            "{source: id, destination: legacy_id}", "{source: updated_at, destination: changed}"
        )
    ).entities[0]

    assert hashed_columns(office) == ("id", "name", "opened", "phone", "updated_at")


def test_content_fingerprint_is_stable_for_the_same_content() -> None:
    first = load_mapping_yaml(EXAMPLE).entities[1]
    again = load_mapping_yaml(mapping_to_yaml(load_mapping_yaml(EXAMPLE))).entities[1]
    explicit = load_mapping_yaml(
        EXAMPLE.replace("depends_on: [office]", "depends_on: [office]\n    detection: hash")
    )

    assert len(content_fingerprint(first)) == 64
    assert content_fingerprint(again) == content_fingerprint(first)
    assert content_fingerprint(explicit.entities[1]) == content_fingerprint(first)


@pytest.mark.parametrize(
    "change",
    [
        {"source_table": "doctors2"},
        {"source_key": ("id", "office_id")},
        {"destination_table": "doctor2"},
        {"destination_key": "uid"},
        {"depends_on": ()},
        {"detection": "hybrid", "timestamp_column": "changed"},
        {"deletes": "report"},
        {"max_delete_share": 0.1},
        {"match_on": ("email",)},
        {"validation": ()},
        {"functions": {"full_name": "upper(first) + last"}},
    ],
    ids=lambda change: ",".join(change),
)
def test_content_fingerprint_changes_with_any_edit(change: dict) -> None:
    doctor = load_mapping_yaml(EXAMPLE).entities[1]

    assert content_fingerprint(dataclasses.replace(doctor, **change)) != content_fingerprint(doctor)


@pytest.mark.parametrize(
    "field",
    [
        FieldSpec(destination="email", source="mail", transform="email"),
        FieldSpec(destination="email", source="email", transform="lower"),
        FieldSpec(destination="email", source="email", transform="email", required=True),
        FieldSpec(destination="email", source="email", transform="email", default=None),
        FieldSpec(destination="email2", source="email", transform="email"),
    ],
)
def test_content_fingerprint_changes_with_any_field_edit(field: FieldSpec) -> None:
    doctor = load_mapping_yaml(EXAMPLE).entities[1]
    edited = dataclasses.replace(doctor, fields=(*doctor.fields[:2], field, doctor.fields[3]))

    assert content_fingerprint(edited) != content_fingerprint(doctor)


def test_content_fingerprint_ignores_functions_the_entity_does_not_use() -> None:
    office, doctor = load_mapping_yaml(EXAMPLE).entities
    more = {"full_name": FULL_NAME, "unused": "trim(x)"}

    assert used_functions(office) == {}
    assert used_functions(doctor) == {"full_name": FULL_NAME}
    assert content_fingerprint(dataclasses.replace(office, functions={})) == content_fingerprint(
        office
    )
    assert content_fingerprint(dataclasses.replace(doctor, functions=more)) == content_fingerprint(
        doctor
    )


def test_used_functions_follow_calls_between_named_functions_and_bare_transforms() -> None:
    functions = {
        "clean": "collapse_spaces(trim(v))",
        "label": "upper(clean(v=v))",
        "other": "lower(v)",
    }
    spec = EntitySpec(
        name="e",
        source_table="t",
        source_key=("id",),
        destination_table="d",
        fields=(FieldSpec(destination="a", source="a", transform="label"),),
        functions=functions,
    )

    assert used_functions(spec) == {
        "clean": "collapse_spaces(trim(v))",
        "label": "upper(clean(v=v))",
    }
