"""`diffmig mappings preview` on the clinic: MariaDB legacy → PostgreSQL destination.

The expected destination values come from ``clinic_expected``, an implementation of the
mapping independent of the engine; the planted failures tell which rows a rule refuses.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from migrationsapp.demo.clinic import (
    MAPPING_FILE,
    ClinicData,
    create_destination_schema,
    create_legacy_schema,
    expected_destination,
    failure_reasons,
    generate_clinic,
    load_legacy,
)
from migrationsapp.models import FieldMapping, RecordMap, SchemaMappingDefinition
from migrationsapp.services.mapping_versions import clone_definition
from migrationsapp.services.preview import PreviewReference, preview_entity
from tests.integration.conftest import cli

pytestmark = pytest.mark.services

SEED = 20240701


def _engine(url: str, driver: str, **query: str) -> sa.Engine:
    return sa.create_engine(sa.make_url(url).set(drivername=driver).update_query_dict(query))


@pytest.fixture
def clinic(mysql_to_pg) -> Iterator[ClinicData]:
    """The clinic loaded into MariaDB, an empty destination schema, the mapping imported."""
    legacy_url, target_url = mysql_to_pg
    legacy = _engine(legacy_url, "mysql+pymysql", charset="utf8mb4")
    target = _engine(target_url, "postgresql+psycopg")
    data = generate_clinic(SEED)
    create_legacy_schema(legacy)
    load_legacy(legacy, data)
    create_destination_schema(target)
    assert cli("mappings", "import", str(MAPPING_FILE)).code == 0
    yield data
    legacy.dispose()
    target.dispose()


def preview_json(*args: str) -> dict:
    result = cli("mappings", "preview", *args, "--json")
    assert (result.code, result.err) == (0, "")
    return json.loads(result.out)


def key_with(reasons: dict[str, str], reason: str) -> str:
    return next(key for key, why in reasons.items() if why == reason)


def shown(value: Any) -> Any:
    """An expected destination value as the JSON document shows it."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@pytest.mark.django_db(transaction=True)
def test_preview_shows_transformed_values_and_marks_a_failing_rule_next_to_its_row(clinic):
    reasons = failure_reasons(clinic)["doctor"]
    expected = expected_destination(clinic)["doctor"]
    doctors = sorted(clinic.doctors, key=int)

    document = preview_json("doctor", "--limit", str(len(doctors)))

    assert document["entity"] == "doctor"
    rows = {row["key"]: row for row in document["rows"]}
    assert [row["key"] for row in document["rows"]] == doctors  # the first N by key
    for key, row in rows.items():
        legacy = clinic.doctors[key]
        assert row["source"]["first_name"] == legacy["first_name"]  # as the source holds it
        assert row["source"]["salary"] == shown(legacy["salary"])
        # Before any run, no parent is migrated: shown so, and not held against the row.
        assert row["destination"]["office_id"] == (
            f"→ office {legacy['office_id']} (not migrated yet)"
        )
    for key, values in expected.items():
        assert rows[key]["error"] is None
        assert {k: v for k, v in rows[key]["destination"].items() if k != "office_id"} == {
            k: shown(v) for k, v in values.items() if k != "office_id"
        }

    invalid = key_with(reasons, "email: format")
    assert rows[invalid]["error"]["rule"] == "format"
    assert rows[invalid]["error"]["field"] == "email"
    assert "is not a valid email" in rows[invalid]["error"]["reason"]
    assert rows[invalid]["destination"]["email"] == clinic.doctors[invalid]["email"].strip().lower()
    duplicate = key_with(reasons, "email: unique")
    assert (rows[duplicate]["error"]["rule"], rows[duplicate]["error"]["field"]) == (
        "unique",
        "email",
    )
    orphan = key_with(reasons, "office_id: missing parent")
    assert rows[orphan]["error"] is None
    failing = {key for key, row in rows.items() if row["error"]}
    assert failing == {invalid, duplicate}


@pytest.mark.django_db(transaction=True)
def test_preview_prints_a_block_per_row_with_its_verdict(clinic):
    reasons = failure_reasons(clinic)["doctor"]
    invalid = key_with(reasons, "email: format")
    limit = sorted(clinic.doctors, key=int).index(invalid) + 1

    result = cli("mappings", "preview", "doctor", "--limit", str(limit))

    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].startswith("doctor (mapping v1): doctors → doctor")
    header = next(line for line in lines if line.startswith(f"doctor {invalid}: "))
    assert header.startswith(f"doctor {invalid}: FAILS format on email: format: ")
    first = sorted(clinic.doctors, key=int)[0]
    assert f"doctor {first}: passes" in lines
    assert any(line.strip().startswith("email") and "← fails" in line for line in lines)
    assert lines[-1] == f"{limit - 1} pass, 1 would be quarantined"


@pytest.mark.django_db(transaction=True)
def test_preview_after_a_run_shows_parent_uuids_and_refuses_a_missing_parent(clinic):
    assert cli("run", "--baseline").code == 0
    reasons = failure_reasons(clinic)["doctor"]
    orphan = key_with(reasons, "office_id: missing parent")

    result = preview_entity(entity="doctor", limit=len(clinic.doctors))

    rows = {row.key: row for row in result.rows}
    first = sorted(clinic.doctors, key=int)[0]
    office = str(clinic.doctors[first]["office_id"])
    office_uuid = RecordMap.objects.get(entity_type="office", legacy_key_text=office)
    assert rows[first].destination["office_id"] == PreviewReference(
        "office", office, office_uuid.destination_uuid
    )
    assert str(rows[first].destination["office_id"]) == (
        f"→ office {office} ({office_uuid.destination_uuid})"
    )
    # Its own e-mail address is in the destination now, under its own UUID: still unique.
    assert rows[first].error is None
    assert (rows[orphan].error.rule, rows[orphan].error.field) == ("reference", "office_id")
    assert {key for key, row in rows.items() if row.error} == set(reasons)


@pytest.mark.django_db(transaction=True)
def test_preview_of_a_draft_definition_shows_the_draft_values(clinic):
    active = SchemaMappingDefinition.objects.get(entity_type="doctor", is_active=True)
    draft = clone_definition(definition_id=active.pk, user=None)
    FieldMapping.objects.filter(definition=draft, destination_field="email").update(
        transformation="upper(trim(value))"
    )
    first = sorted(clinic.doctors, key=int)[0]

    from_draft = preview_entity(entity="doctor", limit=1, definition=draft)
    from_active = preview_entity(entity="doctor", limit=1)

    expected = expected_destination(clinic)["doctor"][first]["email"]
    assert from_draft.mapping_version == 2
    assert from_draft.rows[0].destination["email"] == expected.upper()
    assert from_active.mapping_version == 1
    assert from_active.rows[0].destination["email"] == expected


@pytest.mark.django_db(transaction=True)
def test_preview_refuses_an_unknown_entity_and_a_bad_limit(clinic):
    assert cli("mappings", "preview", "invoice").code == 2
    assert cli("mappings", "preview", "doctor", "--limit", "0").code == 2
