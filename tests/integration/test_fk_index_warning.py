"""A destination foreign key into an entity with deletes, and no index on its child column.

Deleting a parent row makes the database look for rows that still reference it; with no
index on the child column that is a scan of the whole child table per deleted row (measured:
6 patient deletes a second against 2 million appointments). The analysis says so — a WARN
line in the log, a warning from `analyze` and from `mappings preview`, and the run's own
analysis — naming the key and the index to create; an indexed key, a soft-delete entity or
a key into an entity whose deletes remove no row draws nothing.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from migrationsapp.engine.introspect import unindexed_references
from migrationsapp.models import DifferentialAnalysisResult, MigrationExecutionLog
from migrationsapp.models.choices import LogLevel
from tests.databases import engine_for
from tests.integration.conftest import cli
from tests.support.scratch_pair import create_tables, import_mapping_file

ENTITIES = """\
  - name: patient
    source_table: patients
    source_key: [id]
    destination_table: patient
    destination_key: id
    deletes: {deletes}
    soft_delete_column: deleted_at
    fields:
      - {{source: id, destination: legacy_id}}
  - name: ward
    source_table: wards
    source_key: [id]
    destination_table: ward
    destination_key: id
    deletes: report
    fields:
      - {{source: id, destination: legacy_id}}
"""


def create_destination(engine: sa.Engine) -> None:
    create_tables(
        engine,
        "CREATE TABLE patient (id uuid PRIMARY KEY, legacy_id integer, "
        "deleted_at timestamptz, code text, UNIQUE (code, legacy_id))",
        "CREATE TABLE ward (id uuid PRIMARY KEY, legacy_id integer)",
        # Unindexed: the one that slows deletes down.
        'CREATE TABLE "Appointment" (id uuid PRIMARY KEY, patient_id uuid '
        "REFERENCES patient (id), ward_id uuid REFERENCES ward (id))",
        # Indexed, by an index that leads with the column.
        "CREATE TABLE visit (id uuid PRIMARY KEY, patient_id uuid REFERENCES patient (id))",
        "CREATE INDEX visit_patient ON visit (patient_id, id)",
        # A two-column key, indexed in the other order: that index serves it.
        "CREATE TABLE badge (id uuid PRIMARY KEY, code text, legacy_id integer, "
        "FOREIGN KEY (code, legacy_id) REFERENCES patient (code, legacy_id))",
        "CREATE INDEX badge_key ON badge (legacy_id, code)",
        # A partial index does not serve the key's checks.
        "CREATE TABLE note (id uuid PRIMARY KEY, patient_id uuid REFERENCES patient (id))",
        "CREATE INDEX note_some ON note (patient_id) WHERE patient_id IS NOT NULL",
    )


@pytest.fixture
def clinic(mysql_to_pg, tmp_path):
    legacy_url, target_url = mysql_to_pg
    legacy, target = engine_for(legacy_url), engine_for(target_url)
    create_tables(
        legacy,
        "CREATE TABLE patients (id INT PRIMARY KEY)",
        "CREATE TABLE wards (id INT PRIMARY KEY)",
        "INSERT INTO patients VALUES (1), (2), (3)",
        "INSERT INTO wards VALUES (1)",
    )
    create_destination(target)

    def use(deletes: str) -> None:
        import_mapping_file(tmp_path / f"{deletes}.yaml", ENTITIES.format(deletes=deletes))

    yield target, use
    legacy.dispose()
    target.dispose()


APPOINTMENT = (
    'patient: its deletes scan table "Appointment" row by row: foreign key '
    "Appointment_patient_id_fkey (patient_id) has no index; add one: "
    'CREATE INDEX ON "Appointment" (patient_id)'
)
NOTE = (
    "patient: its deletes scan table note row by row: foreign key note_patient_id_fkey "
    "(patient_id) has no index; add one: CREATE INDEX ON note (patient_id)"
)


def warnings(text: str) -> list[str]:
    return [line.removeprefix("warning: ") for line in text.splitlines() if "warning: " in line]


def warn_lines(**filters) -> list[str]:
    return list(
        MigrationExecutionLog.objects.filter(log_level=LogLevel.WARN, **filters)
        .order_by("id")
        .values_list("message", flat=True)
    )


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_unindexed_foreign_keys_into_a_deleting_entity_are_warned_of(clinic):
    target, use = clinic
    use("hard")

    analyzed = cli("analyze")
    assert analyzed.code == 0, analyzed.err
    assert warnings(analyzed.err) == [APPOINTMENT, NOTE]
    assert warn_lines(entity_type="patient") == [APPOINTMENT, NOTE]
    # A --json document stays the document alone; the log says it all the same.
    quiet = cli("analyze", "--json")
    assert (quiet.code, quiet.err) == (0, "")
    assert set(json.loads(quiet.out)["entities"]) == {"patient", "ward"}
    assert warn_lines(entity_type="patient") == [APPOINTMENT, NOTE] * 2
    # "Appointment".ward_id has no index either, but ward's deletes are only reported.
    assert warn_lines(entity_type="ward") == []
    for result in DifferentialAnalysisResult.objects.filter(entity_type="patient"):
        assert result.analysis_metadata["unindexed_references"] == [APPOINTMENT, NOTE]

    preview = cli("mappings", "preview", "patient", "--limit", "1")
    assert preview.code == 0, preview.err
    assert warnings(preview.err) == [APPOINTMENT, NOTE]

    # A run's own analysis says it too, in the session's log.
    run = cli("run", "--json")
    assert run.code == 0, run.err
    session = json.loads(run.out)["session"]["id"]
    assert warn_lines(session_id=session, entity_type="patient") == [APPOINTMENT, NOTE]

    # Once indexed, nothing is said.
    with target.begin() as conn:
        conn.exec_driver_sql('CREATE INDEX ON "Appointment" (patient_id)')
        conn.exec_driver_sql("CREATE INDEX ON note (patient_id)")
    assert warnings(cli("analyze").err) == []


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_entity_whose_deletes_keep_their_rows_draws_no_warning(clinic):
    _, use = clinic
    use("soft")
    analyzed = cli("analyze")
    assert analyzed.code == 0, analyzed.err
    assert warnings(analyzed.err) == []
    assert warn_lines() == []


def test_sqlite_foreign_keys_without_an_index_are_found(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE patient (id TEXT PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE appointment (id TEXT PRIMARY KEY, patient_id TEXT "
            "REFERENCES patient (id), parent INTEGER REFERENCES tree (n))"
        )
        conn.exec_driver_sql(
            "CREATE TABLE visit (id TEXT PRIMARY KEY, patient_id TEXT REFERENCES patient (id))"
        )
        conn.exec_driver_sql("CREATE INDEX visit_patient ON visit (patient_id)")
        conn.exec_driver_sql(
            "CREATE TABLE tree (n INTEGER PRIMARY KEY, up INTEGER REFERENCES tree (n))"
        )
        conn.exec_driver_sql("CREATE TABLE leaf (up INTEGER PRIMARY KEY REFERENCES tree (n))")
    with engine.connect() as conn:
        found = unindexed_references(conn, "sqlite", "patient", None)
        tree = unindexed_references(conn, "sqlite", "tree", None)
    engine.dispose()
    assert [(r.child, r.columns, r.create_index) for r in found] == [
        ("appointment", ("patient_id",), "CREATE INDEX ON appointment (patient_id)")
    ]
    # leaf.up is its rowid (an INTEGER PRIMARY KEY): looked up without an index.
    assert sorted((r.child, r.columns) for r in tree) == [
        ("appointment", ("parent",)),
        ("tree", ("up",)),
    ]
