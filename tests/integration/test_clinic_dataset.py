"""The clinic data set: schemas, generation, change rounds and the expected migration.

The legacy side runs on MariaDB (a scratch database per module) and on SQLite; the
destination schema on PostgreSQL (scratch database) and on SQLite. The expected destination
is checked against hand-computed values and against the rows planted to fail.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Iterator
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml

from migrationsapp.demo.clinic import (
    ENTITIES,
    LEGACY_COLUMNS,
    LEGACY_TABLES,
    MAPPING_FILE,
    SOURCE_KEYS,
    ChangeLog,
    ClinicData,
    apply_changes,
    create_destination_schema,
    create_legacy_schema,
    drop_legacy_schema,
    expected_analysis,
    expected_destination,
    expected_failures,
    failure_reasons,
    generate_clinic,
    legacy_transaction,
    load_legacy,
    read_legacy,
    row_key,
)
from migrationsapp.engine.ids import encode_key

pytestmark = pytest.mark.services

MYSQL_URL = os.environ.get("DIFFMIG_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
POSTGRES_URL = os.environ.get(
    "DIFFMIG_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SEED = 20240701
REFERENCES = {
    "doctor": {"office_id": "office"},
    "patient": {"doctor_id": "doctor"},
    "appointment": {"patient_code": "patient", "doctor_id": "doctor"},
}
DESTINATION_REFERENCES = {
    "doctor": {"office_id": "office"},
    "patient": {"doctor_id": "doctor"},
    "appointment": {"patient_id": "patient", "doctor_id": "doctor"},
}


# --------------------------------------------------------------------------- fixtures


def _scratch_name() -> str:
    return f"diffmig_t_clinic_{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def mariadb_engine() -> Iterator[sa.Engine]:
    url = sa.make_url(MYSQL_URL).set(drivername="mysql+pymysql", query={"charset": "utf8mb4"})
    server = sa.create_engine(url.set(database=None), isolation_level="AUTOCOMMIT")
    name = _scratch_name()
    with server.connect() as conn:
        conn.exec_driver_sql(
            f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
        )
    engine = sa.create_engine(url.set(database=name))
    try:
        yield engine
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        server.dispose()


@pytest.fixture(scope="module")
def postgres_engine() -> Iterator[sa.Engine]:
    url = sa.make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    server = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = _scratch_name()
    with server.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")
    engine = sa.create_engine(url.set(database=name))
    try:
        yield engine
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        server.dispose()


@pytest.fixture(params=["mariadb", "sqlite"])
def legacy(request: pytest.FixtureRequest, tmp_path) -> Iterator[sa.Engine]:
    """An empty legacy database: the module's MariaDB scratch database, or a SQLite file."""
    if request.param == "mariadb":
        engine = request.getfixturevalue("mariadb_engine")
        drop_legacy_schema(engine)
        yield engine
        return
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'legacy.db'}")
    yield engine
    engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def destination(request: pytest.FixtureRequest, tmp_path) -> Iterator[sa.Engine]:
    """An empty destination database: PostgreSQL (a fresh scratch database) or SQLite."""
    if request.param == "postgresql":
        engine = request.getfixturevalue("postgres_engine")
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        yield engine
        return
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def loaded(legacy: sa.Engine) -> tuple[sa.Engine, ClinicData]:
    data = generate_clinic(SEED)
    create_legacy_schema(legacy)
    load_legacy(legacy, data)
    return legacy, data


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one()


# --------------------------------------------------------------------------- schemas


def test_legacy_schema_has_the_four_tables_and_their_keys(legacy):
    create_legacy_schema(legacy)

    inspector = sa.inspect(legacy)
    assert set(inspector.get_table_names()) == set(LEGACY_TABLES.values())
    for entity, table in LEGACY_TABLES.items():
        assert [c["name"] for c in inspector.get_columns(table)] == list(LEGACY_COLUMNS[entity])
        pk = inspector.get_pk_constraint(table)["constrained_columns"]
        assert tuple(pk) == SOURCE_KEYS[entity]
        assert inspector.get_foreign_keys(table) == []  # legacy rows may point at nothing


def test_mariadb_legacy_schema_uses_legacy_types_and_collations(mariadb_engine):
    drop_legacy_schema(mariadb_engine)
    create_legacy_schema(mariadb_engine)

    with mariadb_engine.connect() as conn:
        columns = {
            (table, column): (column_type, collation, extra)
            for table, column, column_type, collation, extra in conn.exec_driver_sql(
                "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, COLLATION_NAME, EXTRA "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
            )
        }
        tables = dict(
            conn.exec_driver_sql(
                "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE()"
            ).all()
        )
    assert set(tables.values()) == {"utf8mb4_general_ci"}
    assert columns["offices", "id"] == ("int(11)", None, "auto_increment")
    assert columns["offices", "opened"][0] == "date"
    assert columns["offices", "name"][1] == "utf8mb4_general_ci"
    assert columns["doctors", "active_flag"][0] == "char(1)"
    assert columns["doctors", "salary"][0] == "decimal(10,2)"
    assert columns["doctors", "hired"][0] == "datetime"
    assert columns["patients", "vip"][0] == "tinyint(1)"
    assert columns["patients", "code"][:2] == ("varchar(20)", "utf8mb4_bin")
    assert columns["appointments", "patient_code"][:2] == ("varchar(20)", "utf8mb4_bin")


def test_destination_schema_has_uuid_keys_and_foreign_keys(destination):
    create_destination_schema(destination)

    inspector = sa.inspect(destination)
    assert set(inspector.get_table_names()) == set(ENTITIES)
    for table in ENTITIES:
        assert inspector.get_pk_constraint(table)["constrained_columns"] == ["id"]
    foreign = {
        table: {
            (fk["constrained_columns"][0], fk["referred_table"], fk["referred_columns"][0])
            for fk in inspector.get_foreign_keys(table)
        }
        for table in ENTITIES
    }
    assert foreign == {
        "office": set(),
        "doctor": {("office_id", "office", "id")},
        "patient": {("doctor_id", "doctor", "id")},
        "appointment": {("patient_id", "patient", "id"), ("doctor_id", "doctor", "id")},
    }
    nullable = {c["name"]: c["nullable"] for c in inspector.get_columns("doctor")}
    assert nullable == {
        "id": nullable["id"],  # SQLite reports a non-INTEGER primary key as nullable
        "office_id": False,
        "legacy_id": False,
        "full_name": False,
        "email": True,
        "is_active": False,
        "salary": True,
        "hired_at": True,
    }
    with destination.connect() as conn:
        if destination.dialect.name == "sqlite":
            declared = {row[1]: row[2] for row in conn.exec_driver_sql("PRAGMA table_info(doctor)")}
            assert declared["id"] == declared["office_id"] == "UUID"
        else:
            types = dict(
                conn.exec_driver_sql(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'doctor'"
                ).all()
            )
            assert types["id"] == types["office_id"] == "uuid"
            assert types["hired_at"] == "timestamp with time zone"
            assert types["salary"] == "numeric"


def test_destination_refuses_a_row_whose_parent_does_not_exist(destination):
    create_destination_schema(destination)

    orphan = {
        "id": "6f9619ff-8b86-d011-b42d-00c04fc964ff",
        "office": "00000000-0000-0000-0000-0000000000aa",
    }
    with pytest.raises(sa.exc.IntegrityError), destination.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO doctor (id, office_id, legacy_id, full_name, is_active) "
                "VALUES (:id, :office, 1, 'Ann Smith', true)"
            ),
            orphan,
        )
    assert _count(destination, "doctor") == 0


# --------------------------------------------------------------------------- generation


def test_generation_is_deterministic_per_seed():
    first, again, other = generate_clinic(SEED), generate_clinic(SEED), generate_clinic(SEED + 1)

    assert first.rows == again.rows
    assert first.planted == again.planted
    assert first.rows != other.rows
    assert first.counts() == {"office": 5, "doctor": 20, "patient": 120, "appointment": 300}
    assert generate_clinic(SEED, scale=3).counts() == {
        "office": 15,
        "doctor": 60,
        "patient": 360,
        "appointment": 900,
    }


def test_generated_rows_carry_the_legacy_mess():
    data = generate_clinic(SEED)

    assert "0000-00-00" in {o["opened"] for o in data.offices.values()}
    births = {p["birth"] for p in data.patients.values()}
    assert {"0000-00-00"} <= births
    assert any("/" in b for b in births if b) and any("." in b for b in births if b)
    assert any(ord(ch) > 0xFFFF for p in data.patients.values() for ch in p["name"])
    codes = {p["code"] for p in data.patients.values()}
    assert {"NEW/ 1,2", "A/B 7", "Smith, J", "OLD\\3", "W 5 ", "P-0007", "p-0007"} <= codes
    assert encode_key(["NEW/ 1,2", 1]) in data.appointments  # 'NEW\/ 1,2/1'
    assert "NEW\\/ 1,2/1" in data.appointments
    assert any(d["first_name"] != d["first_name"].strip() for d in data.doctors.values())
    assert {d["active_flag"] for d in data.doctors.values()} == {"Y", "N"}
    assert {p["vip"] for p in data.patients.values()} == {0, 1}
    salaries = [d["salary"] for d in data.doctors.values() if d["salary"] is not None]
    assert all(isinstance(s, Decimal) and s.as_tuple().exponent == -2 for s in salaries)
    assert data.planted["office"] == {"5": "phone: phone_e164"}
    assert sorted(data.planted["doctor"].values()) == ["email: format", "email: unique"]
    assert data.planted["patient"] == {
        "P-0004": "name: required",
        "P-0005": "doctor_id: missing parent",
    }
    assert data.planted["appointment"] == {}


# --------------------------------------------------------------------------- loading


def test_load_legacy_round_trips_every_value(loaded):
    engine, data = loaded

    assert read_legacy(engine) == data.rows
    for entity, table in LEGACY_TABLES.items():
        assert _count(engine, table) == len(data.rows[entity])


def test_mariadb_session_mode_is_restored_after_loading(mariadb_engine):
    drop_legacy_schema(mariadb_engine)
    with mariadb_engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar()
    create_legacy_schema(mariadb_engine)
    load_legacy(mariadb_engine, generate_clinic(SEED))

    with mariadb_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar() == before
        zero = conn.exec_driver_sql(
            "SELECT COUNT(*) FROM offices WHERE CAST(opened AS CHAR) = '0000-00-00'"
        ).scalar()
    assert zero >= 1


def test_load_legacy_is_fast_enough_for_thousands_of_rows(legacy):
    data = generate_clinic(SEED, scale=10)
    create_legacy_schema(legacy)

    assert load_legacy(legacy, data) == data.counts()
    apply_changes(legacy, data, SEED)
    assert read_legacy(legacy) == data.rows


# --------------------------------------------------------------------------- change rounds


def _references_hold(data: ClinicData) -> list[str]:
    """Child rows whose parent is gone (the planted doctor 0 excepted)."""
    broken = []
    for entity, columns in REFERENCES.items():
        for key, row in data.rows[entity].items():
            for column, parent in columns.items():
                value = row[column]
                if value not in (None, 0) and encode_key([value]) not in data.rows[parent]:
                    broken.append(f"{entity} {key}: {column}={value!r}")
    return broken


def _check_round(before: ClinicData, after: dict[str, dict], log: ChangeLog) -> None:
    for entity in ENTITIES:
        old, new, changes = before.rows[entity], after[entity], log[entity]
        assert changes.inserted and not changes.inserted & set(old), entity
        assert changes.deleted and changes.deleted <= set(old), entity
        assert set(new) == (set(old) - changes.deleted) | changes.inserted, entity
        assert changes.silent <= changes.updated and changes.moved <= changes.updated
        assert changes.fixed <= changes.updated
        assert not changes.updated & changes.deleted
        assert changes.silent, entity
        for key in changes.updated:
            differing = {c for c in LEGACY_COLUMNS[entity] if old[key][c] != new[key][c]}
            assert differing - {"updated_at", "notes"}, (entity, key)
            if key in changes.silent:
                assert "updated_at" not in differing, (entity, key)
            else:
                assert new[key]["updated_at"] > old[key]["updated_at"], (entity, key)
        for key in changes.unmapped_only:
            assert {c for c in LEGACY_COLUMNS[entity] if old[key][c] != new[key][c]} == {"notes"}
        for key in changes.moved:
            assert old[key]["doctor_id"] != new[key]["doctor_id"]
        untouched = set(new) - changes.inserted - changes.updated - changes.unmapped_only
        assert all(old[key] == new[key] for key in untouched), entity
    assert log["office"].unmapped_only
    assert log["appointment"].moved and log["patient"].moved


def test_apply_changes_keeps_the_log_consistent_with_the_database(loaded):
    engine, data = loaded
    fixed = []
    for round_number in (1, 2, 3):
        before = data.snapshot()
        log = apply_changes(engine, data, SEED)

        after = read_legacy(engine)
        assert after == data.rows
        assert log.round == round_number
        _check_round(before, after, log)
        assert _references_hold(data) == []
        fixes = [(e, k) for e in ENTITIES for k in log[e].fixed]
        assert len(fixes) == 1
        entity, key = fixes[0]
        assert key in expected_failures(before)[entity]
        assert key not in expected_failures(data)[entity]
        fixed.append(entity)
    assert fixed == ["doctor", "office", "patient"]
    salaries = [d["salary"] for d in data.doctors.values() if d["salary"] is not None]
    assert all(isinstance(s, Decimal) and s.as_tuple().exponent == -2 for s in salaries)
    assert not any(apply_changes(engine, data, SEED)[e].fixed for e in ENTITIES)
    assert read_legacy(engine) == data.rows


def test_apply_changes_deletes_a_parent_with_all_its_children(loaded):
    engine, data = loaded
    before = data.snapshot()

    log = apply_changes(engine, data, SEED)

    (office,) = log["office"].deleted
    doctors = {k for k, d in before.doctors.items() if str(d["office_id"]) == office}
    assert doctors and doctors <= log["doctor"].deleted
    patients = {k for k, p in before.patients.items() if str(p["doctor_id"]) in doctors}
    assert patients <= log["patient"].deleted
    with legacy_transaction(engine) as conn:
        left = conn.execute(
            sa.text("SELECT COUNT(*) FROM doctors WHERE office_id = :office"),
            {"office": int(office)},
        ).scalar()
    assert left == 0


def test_change_rounds_are_deterministic_per_seed(legacy, tmp_path):
    first = generate_clinic(SEED)
    create_legacy_schema(legacy)
    load_legacy(legacy, first)
    other_engine = sa.create_engine(f"sqlite:///{tmp_path / 'again.db'}")
    second = generate_clinic(SEED)
    create_legacy_schema(other_engine)
    load_legacy(other_engine, second)

    assert apply_changes(legacy, first, SEED) == apply_changes(other_engine, second, SEED)
    assert first.rows == second.rows
    other_engine.dispose()


# --------------------------------------------------------------------------- expectations


def test_expected_destination_excludes_the_planted_failures():
    data = generate_clinic(SEED)
    destination, reasons = expected_destination(data), failure_reasons(data)

    for entity in ENTITIES:
        assert set(destination[entity]).isdisjoint(reasons[entity])
        assert set(destination[entity]) | set(reasons[entity]) == set(data.rows[entity])
        for key, reason in data.planted[entity].items():
            assert reasons[entity][key] == reason
    # The children of failing rows fail too: the invalid office's lonely doctor, the patients
    # of the planted doctors, and the appointments of failing patients.
    bad_doctors = set(reasons["doctor"])
    assert {r for r in reasons["doctor"].values()} == {
        "email: format",
        "email: unique",
        "office_id: missing parent",
    }
    for key, patient in data.patients.items():
        if patient["doctor_id"] is not None and str(patient["doctor_id"]) in bad_doctors:
            assert reasons["patient"][key] == "doctor_id: missing parent"
    for key, appointment in data.appointments.items():
        if encode_key([appointment["patient_code"]]) in reasons["patient"]:
            assert key in reasons["appointment"]
    # What arrives references only what arrives.
    for entity, columns in DESTINATION_REFERENCES.items():
        for row in destination[entity].values():
            for column, parent in columns.items():
                assert row[column] is None or row[column] in destination[parent]
    assert expected_failures(data) == {e: set(r) for e, r in reasons.items()}


def _tiny_clinic(**changes: dict) -> ClinicData:
    rows = {
        "office": {"id": 3, "name": "  Harbor Medical ", "phone": "(415) 555-0134",
                   "opened": "0000-00-00", "notes": "🚗", "updated_at": None},
        "doctor": {"id": 101, "office_id": 3, "first_name": "  aNNa ", "last_name": "o'BRIEN  ",
                   "email": " Ann.OBrien@Clinic.Example ", "active_flag": "N",
                   "salary": Decimal("85000.5"), "hired": dt.datetime(2020, 7, 1, 9, 30),
                   "updated_at": None},
        "patient": {"code": "NEW/ 1,2", "doctor_id": 101, "name": " maría lopez 🌸",
                    "birth": "3/7/1975", "vip": 1, "phone": "+1 212 555 0199", "updated_at": None},
        "appointment": {"patient_code": "NEW/ 1,2", "seq": 4, "doctor_id": None,
                        "starts": dt.datetime(2024, 1, 15, 23, 45), "note": "bring X-rays ✅",
                        "updated_at": None},
    }  # fmt: skip
    for entity, values in changes.items():
        rows[entity] = {**rows[entity], **values}
    return ClinicData(
        seed=0,
        scale=1,
        rows={entity: {row_key(entity, row): row} for entity, row in rows.items()},
        planted={entity: {} for entity in ENTITIES},
        protected={entity: set() for entity in ENTITIES},
        unfixed=[],
    )


def test_expected_values_follow_the_mapping():
    destination = expected_destination(_tiny_clinic())

    assert destination == {
        "office": {
            "3": {"legacy_id": 3, "name": "Harbor Medical", "phone": "+14155550134",
                  "opened_on": None},
        },
        "doctor": {
            "101": {"office_id": "3", "legacy_id": 101, "full_name": "Anna O'Brien",
                    "email": "ann.obrien@clinic.example", "is_active": False,
                    "salary": Decimal("85000.50"),
                    "hired_at": dt.datetime(2020, 7, 1, 9, 30, tzinfo=dt.UTC)},
        },
        "patient": {
            "NEW\\/ 1,2": {"code": "NEW/ 1,2", "doctor_id": "101", "name": "María Lopez 🌸",
                           "birth_date": dt.date(1975, 3, 7), "vip": True,
                           "phone": "+12125550199"},
        },
        "appointment": {
            "NEW\\/ 1,2/4": {"patient_id": "NEW\\/ 1,2", "seq": 4, "doctor_id": None,
                             "starts_at": dt.datetime(2024, 1, 15, 23, 45, tzinfo=dt.UTC),
                             "note": "bring X-rays ✅"},
        },
    }  # fmt: skip
    assert str(destination["doctor"]["101"]["salary"]) == "85000.50"


@pytest.mark.parametrize(
    ("birth", "expected"),
    [
        ("1980-02-03", dt.date(1980, 2, 3)),
        ("1980-2-3", dt.date(1980, 2, 3)),
        ("3/7/1975", dt.date(1975, 3, 7)),
        ("03/07/1975", dt.date(1975, 3, 7)),
        ("07.03.1975", dt.date(1975, 3, 7)),
        ("7.3.1975", dt.date(1975, 3, 7)),
        ("0000-00-00", None),
        ("", None),
        (None, None),
        ("2021-02-30", None),
    ],
)
def test_expected_birth_dates_follow_the_legacy_date_rules(birth, expected):
    data = _tiny_clinic(patient={"birth": birth})

    assert expected_destination(data)["patient"]["NEW\\/ 1,2"]["birth_date"] == expected


def test_expected_timestamps_use_the_legacy_time_zone():
    data = _tiny_clinic()

    hired = expected_destination(data, timezone="America/New_York")["doctor"]["101"]["hired_at"]

    assert hired == dt.datetime(2020, 7, 1, 9, 30, tzinfo=ZoneInfo("America/New_York"))
    assert hired.utcoffset() == dt.timedelta(0)
    assert hired.hour == 13


@pytest.mark.parametrize(
    ("entity", "values", "failing"),
    [
        ("office", {"phone": "555-0100"}, {"office", "doctor", "patient", "appointment"}),
        ("doctor", {"email": "bob@"}, {"doctor", "patient", "appointment"}),
        ("patient", {"name": "   "}, {"patient", "appointment"}),
        ("patient", {"birth": "sometime in May"}, {"patient", "appointment"}),
        ("appointment", {"doctor_id": 0}, {"appointment"}),
    ],
)
def test_a_failing_row_takes_its_children_along(entity, values, failing):
    failures = expected_failures(_tiny_clinic(**{entity: values}))

    assert {e for e, keys in failures.items() if keys} == failing


def test_expected_analysis_accounts_for_every_source_row(loaded):
    engine, data = loaded
    before = data.snapshot()
    log = apply_changes(engine, data, SEED)

    analysis = expected_analysis(before, log)

    for entity in ENTITIES:
        found = analysis[entity]
        present = found["new"] | found["modified"] | found["unchanged"] | found["retry"]
        assert present == set(data.rows[entity])
        total = sum(len(found[c]) for c in ("new", "modified", "unchanged", "retry"))
        assert total == len(data.rows[entity])  # the categories do not overlap
        assert found["deleted"] <= log[entity].deleted
        assert log[entity].silent & set(expected_destination(before)[entity]) <= found["modified"]
        assert not log[entity].unmapped_only & (found["new"] | found["modified"])
    assert log["doctor"].fixed <= analysis["doctor"]["new"]
    # The fixed doctor's patients were quarantined as missing parents and are retried.
    (bob,) = log["doctor"].fixed
    bobs = {k for k, p in data.patients.items() if str(p["doctor_id"]) == bob}
    assert bobs and bobs <= analysis["patient"]["retry"]
    assert bobs <= set(expected_destination(data)["patient"])


# --------------------------------------------------------------------------- the mapping


def test_mapping_file_maps_the_four_entities_in_dependency_order():
    mapping = yaml.safe_load(MAPPING_FILE.read_text(encoding="utf-8"))

    assert mapping["version"] == 1
    assert mapping["connections"]["legacy"]["url"] == "${DIFFMIG_LEGACY_URL}"
    assert mapping["connections"]["target"]["url"] == "${DIFFMIG_TARGET_URL}"
    assert (mapping["source"], mapping["destination"]) == ("legacy", "target")
    entities = {e["name"]: e for e in mapping["entities"]}
    assert list(entities) == list(ENTITIES)
    assert [entities[e]["depends_on"] for e in ENTITIES] == [
        [],
        ["office"],
        ["doctor"],
        ["patient", "doctor"],
    ]
    for name, entity in entities.items():
        assert entity["source_table"] == LEGACY_TABLES[name]
        assert tuple(entity["source_key"]) == SOURCE_KEYS[name]
        assert (entity["deletes"], entity["max_delete_share"]) == ("hard", 0.5)
    references = {
        (name, f["destination"]): (f.get("source"), f["reference"])
        for name, entity in entities.items()
        for f in entity["fields"]
        if "reference" in f
    }
    assert references == {
        ("doctor", "office_id"): ("office_id", "office"),
        ("patient", "doctor_id"): ("doctor_id", "doctor"),
        ("appointment", "patient_id"): ("patient_code", "patient"),
        ("appointment", "doctor_id"): ("doctor_id", "doctor"),
    }


def test_mapping_file_fits_the_mariadb_and_postgresql_schemas(mariadb_engine, postgres_engine):
    from migrationsapp.engine.introspect import introspect_table
    from migrationsapp.engine.mapping import (
        check_against_tables,
        check_structure,
        load_mapping_yaml,
    )

    mapping = load_mapping_yaml(MAPPING_FILE.read_text(encoding="utf-8"))
    check_structure(mapping)
    drop_legacy_schema(mariadb_engine)
    create_legacy_schema(mariadb_engine)
    with postgres_engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    create_destination_schema(postgres_engine)

    with mariadb_engine.connect() as source, postgres_engine.connect() as target:
        problems = [
            str(problem)
            for entity in mapping.entities
            for problem in check_against_tables(
                entity,
                introspect_table(source, "mysql", entity.source_table, None),
                introspect_table(target, "postgresql", entity.destination_table, None),
            )
        ]
    assert problems == []
