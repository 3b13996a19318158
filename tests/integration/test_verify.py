"""`diffmig verify` on the clinic: MariaDB legacy → PostgreSQL destination, PostgreSQL control.

After a baseline run the destination is exact; each test then plants one difference
directly in a database and checks that verify finds exactly it, with the right values.
The expected source values come from ``clinic_expected``, an implementation of the
mapping independent of the engine.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
import yaml

from migrationsapp.demo.clinic import (
    ENTITIES,
    MAPPING_FILE,
    ClinicData,
    create_destination_schema,
    create_legacy_schema,
    expected_destination,
    expected_failures,
    generate_clinic,
    legacy_transaction,
    load_legacy,
)
from migrationsapp.engine.ids import decode_key
from migrationsapp.models import MigrationExecutionLog, RecordMap
from migrationsapp.services.verify import verify_entities
from tests.integration.conftest import CliResult, cli

pytestmark = pytest.mark.services

SEED = 20240701


@dataclass
class Clinic:
    data: ClinicData
    legacy: sa.Engine
    target: sa.Engine

    def expected(self, entity: str) -> dict[str, dict]:
        return expected_destination(self.data)[entity]

    def target_sql(self, statement: str, **params) -> None:
        with self.target.begin() as conn:
            conn.execute(sa.text(statement), params)


def _engine(url: str, driver: str, **query: str) -> sa.Engine:
    return sa.create_engine(sa.make_url(url).set(drivername=driver).update_query_dict(query))


@pytest.fixture
def clinic(mysql_to_pg) -> Iterator[Clinic]:
    """The clinic loaded into MariaDB, an empty destination schema, the mapping imported."""
    legacy_url, target_url = mysql_to_pg
    legacy = _engine(legacy_url, "mysql+pymysql", charset="utf8mb4")
    target = _engine(target_url, "postgresql+psycopg")
    data = generate_clinic(SEED)
    create_legacy_schema(legacy)
    load_legacy(legacy, data)
    create_destination_schema(target)
    assert cli("mappings", "import", str(MAPPING_FILE)).code == 0
    yield Clinic(data=data, legacy=legacy, target=target)
    legacy.dispose()
    target.dispose()


def _run(*args: str) -> None:
    result = cli("run", *args)
    assert result.code == 0, result.err


@pytest.fixture
def migrated(clinic: Clinic) -> Clinic:
    _run("--baseline")
    return clinic


def verify_json(*args: str) -> tuple[int, dict]:
    result = cli("verify", "--json", *args)
    assert result.err == ""
    return result.code, json.loads(result.out)


def uuid_of(entity: str, key: str) -> uuid.UUID:
    return RecordMap.objects.get(entity_type=entity, legacy_key_text=key).destination_uuid


def clean(document: dict, *, but: str | None = None) -> None:
    """Every entity except ``but`` has no mismatch at all."""
    for entity, result in document["entities"].items():
        if entity != but:
            assert (result["missing"], result["extra"], result["different"]) == ([], [], [])


def import_changed_mapping(tmp_path, change) -> CliResult:
    """Import examples/clinic.yaml after ``change(document)`` edits it."""
    document = yaml.safe_load(MAPPING_FILE.read_text(encoding="utf-8"))
    change(document)
    path = tmp_path / "clinic.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    result = cli("mappings", "import", str(path))
    assert result.code == 0, result.err
    return result


def entity_spec(document: dict, name: str) -> dict:
    return next(e for e in document["entities"] if e["name"] == name)


# --------------------------------------------------------------------------- equal


@pytest.mark.django_db(transaction=True)
def test_verify_after_a_run_finds_every_record_equal_and_quarantined_apart(migrated):
    code, document = verify_json()

    assert code == 0
    failures = expected_failures(migrated.data)
    assert list(document["entities"]) == list(ENTITIES)
    for entity in ENTITIES:
        result = document["entities"][entity]
        assert result["compared"] == len(migrated.data.rows[entity]) - len(failures[entity])
        assert result["compared"] == len(migrated.expected(entity))
        assert result["quarantined"] == len(failures[entity]) > 0
        assert (result["missing"], result["extra"], result["different"], result["stale"]) == (
            [],
            [],
            [],
            [],
        )
        assert result["truncated"] is False
    logs = MigrationExecutionLog.objects.filter(action="verify.finished")
    assert [entry.entity_type for entry in logs] == list(ENTITIES)
    assert {(entry.log_level, entry.session_id, entry.actor) for entry in logs} == {
        ("info", None, "cli")
    }
    patient = logs.get(entity_type="patient").context_data["verify"]
    assert (patient["compared"], patient["quarantined"]) == (
        len(migrated.expected("patient")),
        len(failures["patient"]),
    )


@pytest.mark.django_db(transaction=True)
def test_verify_prints_a_table_per_entity_and_exits_0_when_equal(migrated):
    result = cli("verify")

    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "entity",
        "compared",
        "missing",
        "extra",
        "different",
        "quarantined",
        "stale",
    ]
    assert [line.split()[0] for line in lines[1:5]] == list(ENTITIES)
    assert lines[-1] == "source and destination are equal"


# --------------------------------------------------------------------------- planted differences


@pytest.mark.django_db(transaction=True)
def test_verify_reports_changed_values_with_field_and_both_values(migrated):
    doctor = next(iter(migrated.expected("doctor")))
    patient = next(iter(migrated.expected("patient")))
    appointment = next(iter(migrated.expected("appointment")))
    starts = migrated.expected("appointment")[appointment]["starts_at"]
    migrated.target_sql(
        "UPDATE doctor SET salary = 1.5 WHERE id = :id", id=uuid_of("doctor", doctor)
    )
    migrated.target_sql(
        "UPDATE patient SET name = name || ' ' WHERE id = :id", id=uuid_of("patient", patient)
    )
    migrated.target_sql(
        "UPDATE appointment SET starts_at = starts_at + interval '1 hour' WHERE id = :id",
        id=uuid_of("appointment", appointment),
    )

    code, document = verify_json()

    assert code == 1
    entities = document["entities"]
    salary = migrated.expected("doctor")[doctor]["salary"]
    assert entities["doctor"]["different"] == [
        {"key": doctor, "field": "salary", "source": format(salary, "f"), "destination": "1.50"}
    ]
    name = migrated.expected("patient")[patient]["name"]
    assert entities["patient"]["different"] == [
        {"key": patient, "field": "name", "source": name, "destination": name + " "}
    ]
    assert entities["appointment"]["different"] == [
        {
            "key": appointment,
            "field": "starts_at",
            "source": starts.astimezone(dt.UTC).isoformat(),
            "destination": (starts + dt.timedelta(hours=1)).astimezone(dt.UTC).isoformat(),
        }
    ]
    for entity in ("doctor", "patient", "appointment"):
        assert entities[entity]["counts"]["different_records"] == 1
        assert (entities[entity]["missing"], entities[entity]["extra"]) == ([], [])
    assert (entities["office"]["missing"], entities["office"]["extra"]) == ([], [])
    assert entities["office"]["different"] == []

    human = cli("verify")
    assert human.code == 1
    assert f"patient {patient}: name: source {name!r} != destination {name + ' '!r}" in human.out


@pytest.mark.django_db(transaction=True)
def test_verify_reports_a_deleted_destination_row_as_missing(migrated):
    appointment = next(iter(migrated.expected("appointment")))
    migrated.target_sql(
        "DELETE FROM appointment WHERE id = :id", id=uuid_of("appointment", appointment)
    )

    code, document = verify_json()

    assert code == 1
    result = document["entities"]["appointment"]
    assert result["missing"] == [appointment]
    assert result["compared"] == len(migrated.expected("appointment")) - 1
    clean(document, but="appointment")
    assert (result["extra"], result["different"]) == ([], [])


@pytest.mark.django_db(transaction=True)
def test_verify_caps_its_lists_but_counts_every_mismatch(migrated):
    keys = list(migrated.expected("appointment"))[:3]
    for key in keys:
        migrated.target_sql(
            "DELETE FROM appointment WHERE id = :id", id=uuid_of("appointment", key)
        )

    report = verify_entities(entities=["appointment"], cap=2, batch_size=7)

    (result,) = report.entities
    assert not report.equal
    assert result.missing.items == keys[:2]
    assert (result.missing.total, result.truncated) == (3, True)
    assert result.as_dict()["counts"]["missing"] == 3
    assert result.compared == len(migrated.expected("appointment")) - 3


@pytest.mark.django_db(transaction=True)
def test_verify_reports_a_row_diffmig_did_not_write_as_extra(migrated):
    ghost = uuid.uuid4()
    migrated.target_sql(
        "INSERT INTO office (id, legacy_id, name) VALUES (:id, 999, 'Ghost office')", id=ghost
    )

    code, document = verify_json()

    assert code == 1
    assert document["entities"]["office"]["extra"] == [str(ghost)]
    assert document["entities"]["office"]["missing"] == []
    clean(document, but="office")


@pytest.mark.django_db(transaction=True)
def test_verify_reports_a_reference_to_another_parent_on_that_field(migrated):
    patient, row = next(
        (key, row) for key, row in migrated.expected("patient").items() if row["doctor_id"]
    )
    right = uuid_of("doctor", row["doctor_id"])
    other = next(uuid_of("doctor", d) for d in migrated.expected("doctor") if d != row["doctor_id"])
    migrated.target_sql(
        "UPDATE patient SET doctor_id = :doctor WHERE id = :id",
        doctor=other,
        id=uuid_of("patient", patient),
    )

    code, document = verify_json()

    assert code == 1
    assert document["entities"]["patient"]["different"] == [
        {"key": patient, "field": "doctor_id", "source": str(right), "destination": str(other)}
    ]
    clean(document, but="patient")


@pytest.mark.django_db(transaction=True)
def test_verify_reports_a_source_delete_not_yet_applied_as_extra_until_the_next_run(migrated):
    key = next(iter(migrated.expected("appointment")))
    patient_code, seq = decode_key(key)
    with legacy_transaction(migrated.legacy) as conn:
        conn.execute(
            sa.text("DELETE FROM appointments WHERE patient_code = :code AND seq = :seq"),
            {"code": patient_code, "seq": int(seq)},
        )
    gone = uuid_of("appointment", key)

    code, document = verify_json("--entity", "appointment")

    assert code == 1
    assert list(document["entities"]) == ["appointment"]
    assert document["entities"]["appointment"]["extra"] == [str(gone)]
    assert document["entities"]["appointment"]["missing"] == []

    _run()
    code, document = verify_json()
    assert code == 0
    assert (
        document["entities"]["appointment"]["compared"] == len(migrated.expected("appointment")) - 1
    )


# --------------------------------------------------------------------------- mapping versions


@pytest.mark.django_db(transaction=True)
def test_verify_lists_rows_written_under_an_older_mapping_version_as_stale(migrated, tmp_path):
    # A new rule changes no value: the rows stay equal but were written under version 1.
    import_changed_mapping(
        tmp_path,
        lambda d: entity_spec(d, "patient")["validation"].append(
            {"field": "code", "rule": "required"}
        ),
    )

    code, document = verify_json()

    assert code == 0
    patient = document["entities"]["patient"]
    assert patient["mapping_version"] == 2
    assert sorted(patient["stale"]) == sorted(migrated.expected("patient"))
    assert patient["counts"]["stale"] == len(migrated.expected("patient"))
    assert all(document["entities"][e]["stale"] == [] for e in ENTITIES if e != "patient")
    assert "stale" in cli("verify").out

    _run()  # a new mapping version makes every row modified: all rewritten under v2
    code, document = verify_json()
    assert code == 0
    assert document["entities"]["patient"]["stale"] == []


@pytest.mark.django_db(transaction=True)
def test_verify_accepts_soft_deleted_rows_and_reports_a_delete_undone(migrated, tmp_path):
    migrated.target_sql("ALTER TABLE appointment ADD COLUMN deleted_at timestamptz")

    def soft(document: dict) -> None:
        spec = entity_spec(document, "appointment")
        spec["deletes"] = "soft"
        spec["soft_delete_column"] = "deleted_at"

    import_changed_mapping(tmp_path, soft)
    _run()
    key = next(iter(migrated.expected("appointment")))
    patient_code, seq = decode_key(key)
    with legacy_transaction(migrated.legacy) as conn:
        conn.execute(
            sa.text("DELETE FROM appointments WHERE patient_code = :code AND seq = :seq"),
            {"code": patient_code, "seq": int(seq)},
        )
    _run()
    record = uuid_of("appointment", key)

    code, document = verify_json()

    assert code == 0
    appointment = document["entities"]["appointment"]
    assert appointment["compared"] == len(migrated.expected("appointment")) - 1
    assert appointment["extra"] == []

    migrated.target_sql("UPDATE appointment SET deleted_at = NULL WHERE id = :id", id=record)
    code, document = verify_json()
    assert code == 1
    assert document["entities"]["appointment"]["extra"] == [str(record)]


# --------------------------------------------------------------------------- usage


@pytest.mark.django_db(transaction=True)
def test_verify_refuses_an_entity_without_an_active_mapping(clinic):
    result = cli("verify", "--entity", "invoice")

    assert result.code == 2
    assert "invoice" in result.err
    assert not MigrationExecutionLog.objects.filter(action="verify.finished").exists()


@pytest.mark.django_db(transaction=True)
def test_verify_before_any_run_reports_every_source_record_missing(clinic):
    code, document = verify_json("--entity", "office")

    assert code == 1
    office = document["entities"]["office"]
    assert sorted(office["missing"]) == sorted(clinic.data.rows["office"])
    assert (office["compared"], office["quarantined"]) == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_a_row_left_behind_when_two_entries_share_a_uuid_is_still_extra(migrated):
    # As many destination rows are met through live records as the table holds (one row
    # twice, one not at all): the count alone would hide the row nobody points to.
    first, second = list(migrated.expected("office"))[:2]
    orphan = uuid_of("office", first)
    RecordMap.objects.filter(entity_type="office", legacy_key_text=first).update(
        destination_uuid=uuid_of("office", second)
    )

    code, document = verify_json("--entity", "office")

    assert code == 1
    office = document["entities"]["office"]
    assert office["extra"] == [str(orphan)]
    assert office["missing"] == []
    assert {d["key"] for d in office["different"]} == {first}
