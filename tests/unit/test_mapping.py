"""The mapping file: parsing, dumping, structural and table checks (no database)."""

from __future__ import annotations

import dataclasses
import pickle
import textwrap

import pytest

from migrationsapp.engine.connectors import ColumnInfo, ConnectionSpec, TableInfo
from migrationsapp.engine.errors import MappingError, MappingProblem
from migrationsapp.engine.mapping import (
    MISSING,
    EntitySpec,
    FieldSpec,
    FrozenMap,
    MappingFile,
    check_against_tables,
    check_entity,
    check_structure,
    content_fingerprint,
    dependency_order,
    dump_mapping,
    entity_from_dict,
    entity_to_dict,
    hashed_columns,
    load_mapping_yaml,
    mapping_to_yaml,
    parse_mapping,
    used_functions,
)
from migrationsapp.engine.transforms import compile_functions
from migrationsapp.engine.validation import RuleSpec

# The outside contract's example mapping, word for word (comments shortened to fit the line length).
EXAMPLE = """\
version: 1
connections:
  legacy: {url: "${DIFFMIG_LEGACY_URL}", timezone: UTC}   # the source
  target: {url: "${DIFFMIG_TARGET_URL}"}  # the destination (PostgreSQL; SQLite for the demo)
source: legacy
destination: target
functions:  # the seed's TransformationFunction: named, sandboxed expressions
  full_name: "title(trim(first)) + ' ' + title(trim(last))"   # sees only its keyword parameters
entities:
  - name: office                           # entity_type
    source_table: offices
    source_key: [id]                       # one or more columns; any type
    destination_table: office
    destination_key: id                    # a UUID column in the destination
    depends_on: []                         # entities whose rows this one references
    detection: hash                        # hash (default) | timestamp | hybrid
    timestamp_column: updated_at           # needed for timestamp and hybrid
    deletes: hard                          # hard | soft | report  (soft needs soft_delete_column)
    soft_delete_column: deleted_at
    max_delete_share: 0.05  # refuse a run that would delete more than this share (default 0.05)
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
      - {source: office_id, destination: office_id, reference: office}  # legacy id -> parent's UUID
      - {destination: full_name, expression: "full_name(first=first_name, last=last_name)"}
      - {source: email, destination: email, transform: email}
      - {destination: is_active, expression: "'yes' if active_flag == 'Y' else 'no'"}
    validation:                            # `field` is a destination field of this entity
      - {field: email, rule: format, params: {pattern: email}}
      - {field: full_name, rule: required}
      - {field: email, rule: unique}
"""

FULL_NAME = "title(trim(first)) + ' ' + title(trim(last))"


def column(
    name: str,
    kind: str = "text",
    *,
    nullable: bool = True,
    has_default: bool = False,
    primary_key: bool = False,
    autoincrement: bool = False,
) -> ColumnInfo:
    sql_type = {"text": "VARCHAR(200)", "integer": "INTEGER", "uuid": "UUID"}.get(
        kind, kind.upper()
    )
    return ColumnInfo(
        name=name,
        kind=kind,
        sql_type=sql_type,
        nullable=nullable,
        has_default=has_default,
        primary_key=primary_key,
        autoincrement=autoincrement,
    )


def table(name: str, *columns: ColumnInfo) -> TableInfo:
    return TableInfo(
        name=name,
        schema=None,
        columns={c.name: c for c in columns},
        primary_key=tuple(c.name for c in columns if c.primary_key),
    )


def uuid_key() -> ColumnInfo:
    return column("id", "uuid", nullable=False, primary_key=True)


OFFICES = table(
    "offices",
    column("id", "integer", nullable=False, primary_key=True),
    column("name"),
    column("phone"),
    column("opened"),
    column("updated_at", "datetime"),
    column("notes"),
)
OFFICE = table(
    "office",
    uuid_key(),
    column("name", nullable=False),
    column("phone"),
    column("opened_on", "date"),
    column("legacy_id", "integer", nullable=False),
    column("deleted_at", "datetime_tz"),
    column("created_at", "datetime_tz", nullable=False, has_default=True),
)
DOCTORS = table(
    "doctors",
    column("id", "integer", nullable=False, primary_key=True),
    column("office_id", "integer"),
    column("first_name"),
    column("last_name"),
    column("email"),
    column("active_flag"),
    column("salary", "numeric"),
)
DOCTOR = table(
    "doctor",
    uuid_key(),
    column("office_id", "uuid"),
    column("full_name", nullable=False),
    column("email"),
    column("is_active"),
    column("serial", "integer", nullable=False, autoincrement=True),
)


def problems_of(text: str) -> list[tuple[str | None, str | None, str]]:
    with pytest.raises(MappingError) as caught:
        load_mapping_yaml(textwrap.dedent(text))
    return [(p.entity, p.field, p.reason) for p in caught.value.problems]


def only_problem(text: str) -> tuple[str | None, str | None, str]:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


HEAD = """\
version: 1
connections:
  legacy: {url: "sqlite:///legacy.db"}
  target: {url: "sqlite:///target.db"}
source: legacy
destination: target
"""


def one_entity(entity_lines: str, *, functions: str = "") -> str:
    """A valid file around one entity, given as the YAML lines after `- name: e`."""
    body = textwrap.indent(textwrap.dedent(entity_lines), "    ")
    return f"{HEAD}{functions}entities:\n  - name: e\n{body}"


BASIC = """\
source_table: t
source_key: [id]
destination_table: d
fields:
  - {source: a, destination: a}
"""


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
    for lines in (
        "max_delete_share: 0\n",
        "max_delete_share: 1\n",
        "detection: timestamp\ntimestamp_column: t\n",
    ):
        load_mapping_yaml(one_entity(BASIC + lines))


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


# --------------------------------------------------------------------------- table checks


def test_missing_tables_are_named_with_their_database() -> None:
    office = load_mapping_yaml(EXAMPLE).entities[0]

    assert check_against_tables(office, None, None) == [
        MappingProblem(
            entity="office",
            field=None,
            reason="source table 'offices' does not exist in the source database",
        ),
        MappingProblem(
            entity="office",
            field=None,
            reason="destination table 'office' does not exist in the destination database",
        ),
    ]


def test_missing_source_columns_are_named() -> None:
    mapping = load_mapping_yaml(
        EXAMPLE.replace("detection: hash", "detection: hybrid").replace("updated_at", "changed_at")
    )
    office, doctor = mapping.entities
    offices = table("offices", column("name"), column("opened"))
    doctors = table(
        "doctors",
        column("id", "integer"),
        column("office_id"),
        column("email"),
        column("first_name"),
    )

    assert [(p.field, p.reason) for p in check_against_tables(office, offices, OFFICE)] == [
        (None, "source_key column 'id' does not exist in source table 'offices'"),
        (None, "timestamp_column 'changed_at' does not exist in source table 'offices'"),
        ("phone", "source column 'phone' does not exist in source table 'offices'"),
        ("legacy_id", "source column 'id' does not exist in source table 'offices'"),
    ]
    assert [(p.field, p.reason) for p in check_against_tables(doctor, doctors, DOCTOR)] == [
        (
            "full_name",
            "expression reads 'last_name', which is not a column of source table 'doctors'",
        ),
        (
            "is_active",
            "expression reads 'active_flag', which is not a column of source table 'doctors'",
        ),
    ]


def test_destination_columns_key_and_references_are_checked() -> None:
    office, doctor = load_mapping_yaml(
        EXAMPLE.replace("deletes: hard", "deletes: soft\n    match_on: [code]")
    ).entities
    office_table = table(
        "office",
        column("id", "integer", nullable=False, primary_key=True),
        column("name"),
        column("legacy_id", "integer"),
        column("opened_on", "date"),
    )
    doctor_table = table(
        "doctor",
        uuid_key(),
        column("office_id", "integer"),
        column("full_name"),
        column("email"),
        column("is_active"),
        column("hired_on", "date", nullable=False),
        column("created", "datetime_tz", nullable=False, has_default=True),
    )

    assert [(p.field, p.reason) for p in check_against_tables(office, OFFICES, office_table)] == [
        (None, "destination_key 'id' must be a uuid column, not integer (INTEGER)"),
        (None, "soft_delete_column 'deleted_at' does not exist in destination table 'office'"),
        (None, "match_on column 'code' does not exist in destination table 'office'"),
        ("phone", "destination column 'phone' does not exist in destination table 'office'"),
    ]
    assert [(p.field, p.reason) for p in check_against_tables(doctor, DOCTORS, doctor_table)] == [
        ("office_id", "a reference fills a uuid column; 'office_id' is integer (INTEGER)"),
        (
            "hired_on",
            "destination column 'hired_on' is NOT NULL with no default and no field fills it",
        ),
    ]


def test_missing_destination_key_is_named() -> None:
    office = load_mapping_yaml(EXAMPLE).entities[0]
    office_table = table("office", *[c for c in OFFICE.columns.values() if c.name != "id"])

    assert check_against_tables(office, OFFICES, office_table) == [
        MappingProblem(
            entity="office",
            field=None,
            reason="destination_key 'id' does not exist in destination table 'office'",
        )
    ]


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


def test_mapping_file_entity_lookup() -> None:
    mapping: MappingFile = load_mapping_yaml(EXAMPLE)

    assert mapping.entity("doctor") is mapping.entities[1]
    assert mapping.entity("patient") is None
