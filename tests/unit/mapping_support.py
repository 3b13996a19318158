"""What the mapping tests share: the contract's example file, table shapes, and helpers that
load a file and return its problems (no database)."""

from __future__ import annotations

import textwrap

import pytest

from migrationsapp.engine.connectors import ColumnInfo, TableInfo
from migrationsapp.engine.errors import MappingError
from migrationsapp.engine.mapping import load_mapping_yaml

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
