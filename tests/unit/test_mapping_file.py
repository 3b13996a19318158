"""The mapping file as a whole: the contract's example, dump and load round trips, YAML
errors and file-level refusals (no database)."""

from __future__ import annotations

import pickle
import textwrap

import pytest

from migrationsapp.engine.connectors import ConnectionSpec
from migrationsapp.engine.errors import MappingError
from migrationsapp.engine.mapping import (
    MISSING,
    EntitySpec,
    FieldSpec,
    FrozenMap,
    MappingFile,
    check_against_tables,
    dump_mapping,
    entity_from_dict,
    entity_to_dict,
    load_mapping_yaml,
    mapping_to_yaml,
    parse_mapping,
)
from migrationsapp.engine.validation import RuleSpec
from tests.unit.mapping_support import (
    BASIC,
    DOCTOR,
    DOCTORS,
    EXAMPLE,
    FULL_NAME,
    HEAD,
    OFFICE,
    OFFICES,
    one_entity,
    only_problem,
    problems_of,
)

# --------------------------------------------------------------------------- the example


def test_contract_example_parses_into_specs() -> None:
    mapping = load_mapping_yaml(EXAMPLE)

    assert mapping.version == 1
    assert mapping.connections == {
        "legacy": ConnectionSpec(name="legacy", url="${DIFFMIG_LEGACY_URL}", timezone="UTC"),
        "target": ConnectionSpec(name="target", url="${DIFFMIG_TARGET_URL}"),
    }
    assert (mapping.source, mapping.destination) == ("legacy", "target")
    assert mapping.functions == {"full_name": FULL_NAME}
    office, doctor = mapping.entities
    assert office == EntitySpec(
        name="office",
        source_table="offices",
        source_key=("id",),
        destination_table="office",
        timestamp_column="updated_at",
        soft_delete_column="deleted_at",
        fields=(
            FieldSpec(destination="name", source="name", required=True, transform="trim"),
            FieldSpec(destination="phone", source="phone", transform="phone_e164(value, 'US')"),
            FieldSpec(
                destination="opened_on", source="opened", default=None, transform="legacy_date"
            ),
            FieldSpec(destination="legacy_id", source="id"),
        ),
        functions={"full_name": FULL_NAME},
    )
    assert doctor.depends_on == ("office",)
    assert doctor.fields[0] == FieldSpec(
        destination="office_id", source="office_id", reference="office"
    )
    assert doctor.fields[1] == FieldSpec(
        destination="full_name", expression="full_name(first=first_name, last=last_name)"
    )
    assert doctor.fields[1].default is MISSING
    assert doctor.validation == (
        RuleSpec(field="email", rule="format", params={"pattern": "email"}),
        RuleSpec(field="full_name", rule="required", params={}),
        RuleSpec(field="email", rule="unique", params={}),
    )


def test_contract_example_passes_the_table_checks() -> None:
    mapping = load_mapping_yaml(EXAMPLE)
    office, doctor = mapping.entities

    assert check_against_tables(office, OFFICES, OFFICE) == []
    assert check_against_tables(doctor, DOCTORS, DOCTOR) == []


def test_load_dump_load_is_identity() -> None:
    mapping = load_mapping_yaml(EXAMPLE)

    assert parse_mapping(dump_mapping(mapping)) == mapping
    assert load_mapping_yaml(mapping_to_yaml(mapping)) == mapping


def test_yaml_text_is_stable_and_keeps_the_example_shape() -> None:
    text = mapping_to_yaml(load_mapping_yaml(EXAMPLE))

    assert mapping_to_yaml(load_mapping_yaml(text)) == text
    assert text == textwrap.dedent(
        """\
        version: 1
        connections:
          legacy: {url: "${DIFFMIG_LEGACY_URL}"}
          target: {url: "${DIFFMIG_TARGET_URL}"}
        source: legacy
        destination: target
        functions:
          full_name: title(trim(first)) + ' ' + title(trim(last))
        entities:
          - name: office
            source_table: offices
            source_key: [id]
            destination_table: office
            destination_key: id
            timestamp_column: updated_at
            soft_delete_column: deleted_at
            fields:
              - {source: name, destination: name, required: true, transform: trim}
              - {source: phone, destination: phone, transform: "phone_e164(value, 'US')"}
              - {source: opened, destination: opened_on, default: null, transform: legacy_date}
              - {source: id, destination: legacy_id}
          - name: doctor
            source_table: doctors
            source_key: [id]
            destination_table: doctor
            destination_key: id
            depends_on: [office]
            fields:
              - {source: office_id, destination: office_id, reference: office}
              - {destination: full_name, expression: "full_name(first=first_name, last=last_name)"}
              - {source: email, destination: email, transform: email}
              - {destination: is_active, expression: "'yes' if active_flag == 'Y' else 'no'"}
            validation:
              - {field: email, rule: format, params: {pattern: email}}
              - {field: full_name, rule: required}
              - {field: email, rule: unique}
        """
    )


def test_dump_writes_settings_that_differ_from_the_defaults() -> None:
    mapping = load_mapping_yaml(
        one_entity(
            """\
            source_table: t
            source_key: [a, b]
            destination_table: d
            destination_key: uid
            detection: hybrid
            timestamp_column: changed
            deletes: soft
            soft_delete_column: gone_at
            max_delete_share: 0.5
            match_on: [code]
            fields:
              - {source: a, destination: a, default: [1, {x: 2}]}
              - {destination: since, default: 2020-01-31}
            """
        ).replace('legacy.db"}', 'legacy.db", timezone: Europe/Paris, schema: app}')
    )

    assert dump_mapping(mapping)["connections"]["legacy"] == {
        "url": "sqlite:///legacy.db",
        "timezone": "Europe/Paris",
        "schema": "app",
    }
    assert entity_to_dict(mapping.entities[0]) == {
        "name": "e",
        "source_table": "t",
        "source_key": ["a", "b"],
        "destination_table": "d",
        "destination_key": "uid",
        "detection": "hybrid",
        "timestamp_column": "changed",
        "deletes": "soft",
        "soft_delete_column": "gone_at",
        "max_delete_share": 0.5,
        "match_on": ["code"],
        # a YAML date is kept as ISO text: stored definitions are JSON
        "fields": [
            {"source": "a", "destination": "a", "default": [1, {"x": 2}]},
            {"destination": "since", "default": "2020-01-31"},
        ],
    }
    assert load_mapping_yaml(mapping_to_yaml(mapping)) == mapping


def test_entity_dict_round_trips_and_refuses_unknown_keys() -> None:
    mapping = load_mapping_yaml(EXAMPLE)
    doctor = mapping.entities[1]

    assert entity_from_dict(entity_to_dict(doctor), functions=mapping.functions) == doctor
    data = {**entity_to_dict(doctor), "soruce_table": "x"}
    with pytest.raises(MappingError) as caught:
        entity_from_dict(data, functions={})
    assert [(p.entity, p.field) for p in caught.value.problems] == [("doctor", None)]
    assert caught.value.problems[0].reason.startswith(
        "unknown key 'soruce_table' in an entity; allowed keys: name,"
    )


def test_specs_pickle_and_hand_built_lists_are_frozen() -> None:
    mapping = load_mapping_yaml(EXAMPLE)
    entity = EntitySpec(
        name="e", source_table="t", source_key=["id"], destination_table="d", functions={}
    )

    assert pickle.loads(pickle.dumps(mapping)) == mapping  # noqa: S301 - our own bytes
    assert entity.source_key == ("id",)
    assert isinstance(entity.functions, FrozenMap)
    assert pickle.loads(pickle.dumps(FieldSpec(destination="x"))).default is MISSING  # noqa: S301


# --------------------------------------------------------------------------- YAML errors


def test_yaml_syntax_error_names_the_line() -> None:
    problems = problems_of("version: 1\nconnections:\n  legacy: {url: x\nsource: legacy\n")

    assert len(problems) == 1
    assert problems[0][:2] == (None, None)
    assert problems[0][2].startswith("YAML syntax error at line 4, column 7:")


def test_yaml_duplicate_key_is_refused_with_its_line() -> None:
    problem = only_problem(one_entity("source_table: t\nsource_table: u\n"))

    assert problem == (
        None,
        None,
        "YAML syntax error at line 10, column 5: duplicate key 'source_table'",
    )


def test_yaml_aliases_are_refused() -> None:
    text = HEAD + "entities:\n  - &e {name: e}\n  - *e\n"

    assert only_problem(text) == (
        None,
        None,
        "YAML syntax error at line 9, column 5: "
        "aliases (*name) are not supported in a mapping file",
    )


def test_empty_file_and_non_mapping_are_refused() -> None:
    assert only_problem("") == (None, None, "the mapping file is empty")
    assert only_problem("- a\n")[2].startswith("a mapping file is a mapping with the keys version,")


# --------------------------------------------------------------------------- file-level refusals


def test_version_is_required_and_must_be_1() -> None:
    no_version = one_entity(BASIC).replace("version: 1\n", "")
    assert only_problem(no_version) == (
        None,
        None,
        "version: 1 is required (the mapping file format)",
    )
    assert only_problem(one_entity(BASIC).replace("version: 1", "version: 2")) == (
        None,
        None,
        "version 2 is not supported; this diffmig reads version: 1",
    )


def test_connection_needs_url_and_source_destination_name_known_connections() -> None:
    text = (
        one_entity(BASIC)
        .replace('legacy: {url: "sqlite:///legacy.db"}', "legacy: {timezone: UTC}")
        .replace("destination: target", "destination: nowhere")
    )

    assert problems_of(text) == [
        (None, None, "connection 'legacy': url is required"),
        (
            None,
            None,
            "destination 'nowhere' is not a connection of this file (connections: legacy, target)",
        ),
    ]


def test_placeholder_other_than_diffmig_is_refused_naming_the_variable() -> None:
    text = one_entity(BASIC).replace(
        "sqlite:///legacy.db", "mysql://u:${SECRET_KEY}@${DIFFMIG_HOST}/db"
    )

    assert only_problem(text) == (
        None,
        None,
        "connection 'legacy': ${SECRET_KEY} is refused: only variables whose names begin with "
        "DIFFMIG_ are expanded",
    )


@pytest.mark.parametrize(
    "option",
    ["local_infile", "read_default_file", "read_default_group", "init_command", "LOCAL_INFILE"],
)
def test_file_reading_driver_options_are_refused_naming_the_option(option: str) -> None:
    text = one_entity(BASIC).replace(
        "sqlite:///legacy.db", f"mysql://u@localhost/db?charset=utf8&{option}=1"
    )

    assert only_problem(text) == (
        None,
        None,
        f"connection 'legacy': driver option {option!r} is refused (it makes the driver read "
        "local files or run a statement)",
    )


def test_unknown_timezone_is_refused() -> None:
    text = one_entity(BASIC).replace('legacy.db"}', 'legacy.db", timezone: Mars/Olympus}')

    assert only_problem(text) == (
        None,
        None,
        "connection 'legacy': unknown timezone 'Mars/Olympus' "
        "(use an IANA name such as UTC or Europe/Paris)",
    )


def test_unknown_top_level_and_connection_keys_list_the_allowed_keys() -> None:
    text = one_entity(BASIC).replace("source: legacy\n", "source: legacy\nsources: x\n")
    text = text.replace(
        'legacy: {url: "sqlite:///legacy.db"}', 'legacy: {url: "sqlite:///legacy.db", tz: UTC}'
    )

    assert problems_of(text) == [
        (
            None,
            None,
            "unknown key 'sources' in the mapping file; "
            "allowed keys: version, connections, source, destination, functions, entities",
        ),
        (
            None,
            None,
            "connection 'legacy': unknown key 'tz' in connection 'legacy'; "
            "allowed keys: url, timezone, schema",
        ),
    ]


def test_mapping_file_entity_lookup() -> None:
    mapping: MappingFile = load_mapping_yaml(EXAMPLE)

    assert mapping.entity("doctor") is mapping.entities[1]
    assert mapping.entity("patient") is None
