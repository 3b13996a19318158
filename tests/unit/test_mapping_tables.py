"""A mapping checked against the source and destination tables it names (no database)."""

from __future__ import annotations

from migrationsapp.engine.errors import MappingProblem
from migrationsapp.engine.mapping import check_against_tables, load_mapping_yaml
from tests.unit.mapping_support import (
    DOCTOR,
    DOCTORS,
    EXAMPLE,
    OFFICE,
    OFFICES,
    column,
    table,
    uuid_key,
)

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
