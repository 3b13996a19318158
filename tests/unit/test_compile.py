"""The row transformer: a mapping entity compiled against hand-built tables (no database)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from migrationsapp.engine.compile import CompiledEntity, ReferenceValue, compile_entity
from migrationsapp.engine.connectors import ColumnInfo, TableInfo
from migrationsapp.engine.errors import MappingError, MappingProblem, RowError
from migrationsapp.engine.mapping import EntitySpec, load_mapping_yaml

NEW_YORK = ZoneInfo("America/New_York")

MAPPING = """\
version: 1
connections:
  legacy: {url: "${DIFFMIG_LEGACY_URL}", timezone: America/New_York}
  target: {url: "${DIFFMIG_TARGET_URL}"}
source: legacy
destination: target
functions:
  full_name: "title(trim(first)) + ' ' + title(trim(last))"
  initial: "upper(trim(name))"
entities:
  - name: office
    source_table: offices
    source_key: [id]
    destination_table: office
    timestamp_column: updated_at
    fields:
      - {source: name, destination: name, required: true, transform: trim}
      - {source: phone, destination: phone, transform: "phone_e164(value, 'US')"}
      - {source: opened, destination: opened_on, default: null, transform: legacy_date}
      - {source: id, destination: legacy_id}
      - {source: region, destination: region, default: n/a, transform: trim}
      - {destination: kind, default: clinic}
      - {source: budget, destination: budget}
      - {source: updated_at, destination: changed_at}
  - name: doctor
    source_table: doctors
    source_key: [id]
    destination_table: doctor
    depends_on: [office]
    detection: hybrid
    timestamp_column: updated_at
    fields:
      - {source: office_id, destination: office_id, reference: office}
      - {source: mentor, destination: mentor_id, reference: self}
      - {destination: full_name, expression: "full_name(first=first_name, last=last_name)"}
      - {source: email, destination: email, transform: email}
      - {destination: is_active, expression: "'yes' if active_flag == 'Y' else 'no'"}
      - {source: active_flag, destination: active, transform: to_bool}
      - {source: code, destination: code, transform: initial}
"""


def column(
    name: str, kind: str = "text", *, nullable: bool = True, scale: int | None = None
) -> ColumnInfo:
    return ColumnInfo(
        name=name,
        kind=kind,
        sql_type=kind.upper(),
        nullable=nullable,
        has_default=False,
        primary_key=name == "id",
        scale=scale,
    )


def table(name: str, *columns: ColumnInfo) -> TableInfo:
    return TableInfo(
        name=name,
        schema=None,
        columns={c.name: c for c in columns},
        primary_key=tuple(c.name for c in columns if c.primary_key),
    )


OFFICES = table(
    "offices",
    *(
        column(n)
        for n in ("id", "name", "phone", "opened", "region", "budget", "updated_at", "notes")
    ),
)
OFFICE = table(
    "office",
    column("id", "uuid", nullable=False),
    column("name", nullable=False),
    column("phone"),
    column("opened_on", "date"),
    column("legacy_id", "integer", nullable=False),
    column("region"),
    column("kind"),
    column("budget", "numeric", scale=2),
    column("changed_at", "datetime_tz"),
)
DOCTORS = table(
    "doctors",
    *(
        column(n)
        for n in ("id", "office_id", "mentor", "first_name", "last_name", "email", "active_flag")
    ),
    column("code"),
    column("updated_at", "datetime"),
)
DOCTOR = table(
    "doctor",
    column("id", "uuid", nullable=False),
    column("office_id", "uuid", nullable=False),
    column("mentor_id", "uuid"),
    column("full_name", nullable=False),
    column("email"),
    column("is_active"),
    column("active", "boolean"),
    column("code"),
)


def entities() -> tuple[EntitySpec, EntitySpec]:
    office, doctor = load_mapping_yaml(MAPPING).entities
    return office, doctor


def compiled_office() -> CompiledEntity:
    return compile_entity(entities()[0], OFFICES, OFFICE, timezone=NEW_YORK)


def compiled_doctor() -> CompiledEntity:
    return compile_entity(entities()[1], DOCTORS, DOCTOR, timezone=NEW_YORK)


def office_row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": 7,
        "name": "  Main Street  ",
        "phone": "(650) 253-0000",
        "opened": "3/7/2015",
        "region": " North ",
        "budget": "1234.565",
        "updated_at": dt.datetime(2024, 1, 15, 9, 30),
        "notes": "not mapped",
    }
    row.update(changes)
    return row


def doctor_row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": 3,
        "office_id": 7,
        "mentor": "A/1",
        "first_name": " ada ",
        "last_name": "LOVELACE",
        "email": " Ada@Example.ORG ",
        "active_flag": "Y",
        "code": " ab ",
        "updated_at": dt.datetime(2024, 1, 1),
    }
    row.update(changes)
    return row


def row_error(compiled: CompiledEntity, row: dict[str, object]) -> RowError:
    with pytest.raises(RowError) as caught:
        compiled.transform(row)
    return caught.value


# ------------------------------------------------------------------- what it reads and writes


def test_compiled_entity_lists_what_it_reads_hashes_and_writes() -> None:
    office, doctor = compiled_office(), compiled_doctor()

    assert office.hashed_columns == (
        "id",
        "budget",
        "name",
        "opened",
        "phone",
        "region",
        "updated_at",
    )
    # hash detection: the timestamp is read only because a field maps it
    assert office.source_columns == office.hashed_columns
    assert office.destination_columns == (
        "name",
        "phone",
        "opened_on",
        "legacy_id",
        "region",
        "kind",
        "budget",
        "changed_at",
    )
    assert office.reference_fields == {}
    assert doctor.hashed_columns == (
        "id",
        "active_flag",
        "code",
        "email",
        "first_name",
        "last_name",
        "mentor",
        "office_id",
    )
    # hybrid detection reads the timestamp, which is not part of the content hash
    assert doctor.source_columns == (*doctor.hashed_columns, "updated_at")
    assert doctor.reference_fields == {"office_id": "office", "mentor_id": "doctor"}
    assert doctor.timezone is NEW_YORK


# --------------------------------------------------------------------------- values


def test_transform_applies_sources_transforms_defaults_and_conversions() -> None:
    assert compiled_office().transform(office_row()) == {
        "name": "Main Street",
        "phone": "+16502530000",
        "opened_on": dt.date(2015, 3, 7),
        "legacy_id": 7,
        "region": "North",
        "kind": "clinic",
        "budget": Decimal("1234.56"),
        "changed_at": dt.datetime(2024, 1, 15, 9, 30, tzinfo=NEW_YORK),
    }


def test_transform_evaluates_expressions_named_functions_and_references() -> None:
    assert compiled_doctor().transform(doctor_row()) == {
        "office_id": ReferenceValue("office", "7"),
        "mentor_id": ReferenceValue("doctor", "A\\/1"),
        "full_name": "Ada Lovelace",
        "email": "ada@example.org",
        "is_active": "yes",
        "active": True,
        "code": "AB",
    }


def test_null_becomes_the_default_when_one_is_given() -> None:
    values = compiled_office().transform(office_row(region=None, opened="0000-00-00", phone=None))

    assert (values["region"], values["opened_on"], values["phone"]) == ("n/a", None, None)


def test_null_reference_stays_null_where_the_column_allows_it() -> None:
    values = compiled_doctor().transform(doctor_row(mentor=None, active_flag="N"))

    assert (values["mentor_id"], values["is_active"], values["active"]) == (None, "no", False)


def test_transform_does_not_change_the_row() -> None:
    row = office_row()

    compiled_office().transform(row)
    assert row == office_row()


# ------------------------------------------------------------------- failures name the field


@pytest.mark.parametrize("name", [None, "", "   "])
def test_required_field_that_is_empty_fails_the_row(name: object) -> None:
    error = row_error(compiled_office(), office_row(name=name))

    assert (error.field, error.rule, error.reason) == (
        "name",
        "required",
        "required: source column 'name' is empty",
    )


def test_transform_failure_names_the_field() -> None:
    error = row_error(compiled_office(), office_row(phone="12"))

    assert (error.field, error.rule, error.reason) == (
        "phone",
        "transform",
        "phone_e164: invalid phone number '12' for region US",
    )
    assert str(error) == "field 'phone': phone_e164: invalid phone number '12' for region US"


def test_expression_failure_names_the_field() -> None:
    error = row_error(compiled_doctor(), doctor_row(last_name=None))

    assert (error.field, error.rule) == ("full_name", "transform")
    assert error.reason == "cannot add 'Ada ' and None"


def test_named_function_failure_names_the_field() -> None:
    error = row_error(compiled_doctor(), doctor_row(code=5))

    assert (error.field, error.rule, error.reason) == (
        "code",
        "transform",
        "trim: expected text, got 5",
    )


def test_conversion_failure_names_the_field() -> None:
    error = row_error(compiled_office(), office_row(id="seven"))

    assert (error.field, error.rule, error.reason) == (
        "legacy_id",
        "type",
        "cannot convert 'seven' to integer",
    )


def test_to_bool_failure_names_the_field() -> None:
    error = row_error(compiled_doctor(), doctor_row(active_flag="maybe"))

    assert (error.field, error.rule) == ("active", "transform")
    assert error.reason.startswith("to_bool: 'maybe' is not a boolean")


def test_null_into_a_not_null_column_fails_the_row() -> None:
    office_error = row_error(compiled_office(), office_row(id=None))
    doctor_error = row_error(compiled_doctor(), doctor_row(office_id=None))

    assert (office_error.field, office_error.rule, office_error.reason) == (
        "legacy_id",
        "required",
        "destination column 'legacy_id' is NOT NULL and the value is empty",
    )
    assert (doctor_error.field, doctor_error.reason) == (
        "office_id",
        "destination column 'office_id' is NOT NULL and the value is empty",
    )


# --------------------------------------------------------------------------- refusals


def test_compile_entity_refuses_a_mapping_that_does_not_fit_the_tables() -> None:
    office = entities()[0]
    narrow = table("office", *(c for c in OFFICE.columns.values() if c.name != "kind"))
    offices = table("offices", *(c for c in OFFICES.columns.values() if c.name != "region"))

    with pytest.raises(MappingError) as caught:
        compile_entity(office, offices, narrow, timezone=NEW_YORK)
    assert caught.value.problems == [
        MappingProblem(
            entity="office",
            field="region",
            reason="source column 'region' does not exist in source table 'offices'",
        ),
        MappingProblem(
            entity="office",
            field="kind",
            reason="destination column 'kind' does not exist in destination table 'office'",
        ),
    ]


def test_compile_entity_refuses_structural_problems_too() -> None:
    doctor = entities()[1]
    broken = {**doctor.functions, "initial": "upper(trim(name)"}
    doctor = dataclasses.replace(doctor, functions=broken)

    with pytest.raises(MappingError) as caught:
        compile_entity(doctor, DOCTORS, DOCTOR, timezone=NEW_YORK)
    assert [(p.entity, p.field) for p in caught.value.problems] == [
        (None, None),
        ("doctor", "code"),
    ]
    assert caught.value.problems[0].reason.startswith("function 'initial': does not parse")
    assert caught.value.problems[1].reason == "transform 'initial': unknown function 'initial'"
