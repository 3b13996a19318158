"""`reference: self` on the real services: employees pointing at their managers.

The chain 1 → 2 → … → 7 (each row's manager comes in a *later* batch of 2) and the cycle
10 → 11 → 10 must migrate without duplicates and with every manager_id holding the
manager's UUID; a row whose manager fails is quarantined with the reason (alone, not its
batch) and succeeds once the manager does; a manager and its report, and the cycle, are
deleted in one run without foreign-key errors; a NOT NULL self-reference column is refused
at import.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from migrationsapp.models import MigrationExecutionLog, QuarantinedRecord, RecordEvent, RecordMap
from migrationsapp.models.choices import AuditAction
from tests.databases import engine_for
from tests.integration.conftest import cli

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

MAPPING = """
version: 1
connections:
  legacy: {{url: "${{DIFFMIG_LEGACY_URL}}"}}
  target: {{url: "${{DIFFMIG_TARGET_URL}}"}}
source: legacy
destination: target
entities:
  - name: employee
    source_table: employees
    source_key: [id]
    destination_table: {table}
    destination_key: id
    max_delete_share: 0.5
    fields:
      - {{source: id, destination: legacy_id}}
      - {{source: name, destination: name, required: true}}
      - {{source: manager_id, destination: manager_id, reference: self}}
"""

# id -> (name, manager id)
STAFF = {
    **{i: (f"link {i}", i + 1) for i in range(1, 7)},
    7: ("top of the chain", None),
    10: ("cycle a", 11),
    11: ("cycle b", 10),
    12: ("own manager", 12),
    31: ("boss of 9", None),
    9: ("reports to 31", 31),  # "31" sorts before "9": deleted first, in its own batch
    20: ("", None),  # refused: the name is required
    21: ("reports to 20", 20),  # its manager fails in the same run
    22: ("reports to 99", 99),  # its manager does not exist at all
}


@pytest.fixture
def staff(mysql_to_pg, tmp_path):
    legacy_url, target_url = mysql_to_pg
    legacy, target = engine_for(legacy_url), engine_for(target_url)
    with legacy.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE employees (id INT PRIMARY KEY, name VARCHAR(50), manager_id INT NULL)"
        )
        conn.execute(
            sa.text("INSERT INTO employees (id, name, manager_id) VALUES (:i, :n, :m)"),
            [{"i": i, "n": n, "m": m} for i, (n, m) in STAFF.items()],
        )
    with target.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE employee (id uuid PRIMARY KEY, legacy_id integer, name text NOT NULL, "
            "manager_id uuid NULL REFERENCES employee (id))"
        )
        conn.exec_driver_sql(
            "CREATE TABLE employee_strict (id uuid PRIMARY KEY, legacy_id integer, name text, "
            "manager_id uuid NOT NULL REFERENCES employee_strict (id))"
        )
    path = tmp_path / "staff.yaml"
    path.write_text(MAPPING.format(table="employee"), encoding="utf-8")
    result = cli("mappings", "import", str(path))
    assert result.code == 0, result.out + result.err
    yield legacy, target, tmp_path
    legacy.dispose()
    target.dispose()


def run(*args: str) -> dict:
    result = cli("run", "--json", *args)
    assert result.out, result.err
    return json.loads(result.out)


def destination(target: sa.Engine) -> dict[str, tuple[str, str | None]]:
    """Destination rows by legacy key text: (name, manager's legacy key text or None)."""
    by_uuid = {
        u: k
        for k, u in RecordMap.objects.filter(
            entity_type="employee", deleted_at__isnull=True
        ).values_list("legacy_key_text", "destination_uuid")
    }
    with target.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, name, manager_id FROM employee").all()
    assert len({row_id for row_id, _, _ in rows}) == len(rows)
    return {
        by_uuid.get(row_id, f"?{row_id}"): (name, None if boss is None else by_uuid[boss])
        for row_id, name, boss in rows
    }


def open_quarantine() -> dict[str, str]:
    return dict(
        QuarantinedRecord.objects.filter(resolved_at__isnull=True).values_list(
            "legacy_key_text", "reason"
        )
    )


def test_self_references_are_written_in_a_second_pass(staff):
    legacy, target, _ = staff
    document = run("--batch-size", "2")
    entity = document["entities"]["employee"]
    assert document["session"]["status"] == "completed"
    assert (entity["new"], entity["processed"], entity["failed"]) == (15, 12, 3)

    rows = destination(target)
    expected = {
        str(i): (name, None if boss is None else str(boss))
        for i, (name, boss) in STAFF.items()
        if i not in (20, 22)
    }
    expected["21"] = ("reports to 20", None)  # written, but its manager never came
    assert rows == expected

    reasons = open_quarantine()
    assert set(reasons) == {"20", "21", "22"}
    assert "required" in reasons["20"]
    assert reasons["21"].startswith("field 'manager_id': missing parent: employee '20'")
    assert "missing parent: employee '99' has not been migrated" in reasons["22"]
    actions = list(
        RecordEvent.objects.filter(legacy_key_text="21").order_by("id").values_list("action")
    )
    assert actions == [("created",), ("failed",)]

    # The manager is fixed: the next run writes it and retries its report.
    with legacy.begin() as conn:
        conn.exec_driver_sql("UPDATE employees SET name = 'fixed' WHERE id = 20")
    second = run("--batch-size", "2")
    entity = second["entities"]["employee"]
    counts = {k: entity[k] for k in ("new", "modified", "retry", "processed", "failed")}
    # 20 was never migrated: new; 21 (failed for its manager) and 22 are unchanged: retry.
    assert counts == {"new": 1, "modified": 0, "retry": 2, "processed": 2, "failed": 1}
    rows = destination(target)
    assert rows["20"] == ("fixed", None)
    assert rows["21"] == ("reports to 20", "20")
    assert set(open_quarantine()) == {"22"}

    # A third run finds nothing left to do but the one record whose parent never exists.
    third = run("--batch-size", "2")
    assert third["entities"]["employee"]["retry"] == 1
    assert third["entities"]["employee"]["processed"] == 0


def test_each_batch_and_each_failed_record_is_logged_with_its_audit_code(staff):
    run("--batch-size", "2")

    entries = MigrationExecutionLog.objects.filter(entity_type="employee")
    failed = entries.filter(action=AuditAction.RECORD_FAILED)
    # 20 and 22 fail in their upsert batch, 21 in the second pass (its manager never came).
    assert sorted(failed.values_list("record_id", flat=True)) == ["20", "21", "22"]
    batches = entries.filter(action=AuditAction.ENTITY_BATCH_COMMITTED)
    assert batches.count() == 8  # 15 upserts, 2 a batch
    assert {e.context_data["phase"] for e in batches} == {"upsert"}
    links = entries.filter(action=AuditAction.ENTITY_LINKS_SET)
    # Upserts go in the source's key order, 2 a batch: (1, 2) (3, 4) (5, 6) (7, 9) (10, 11)
    # (12, 20) (21, 22) (31). Left for the second pass: 1 to 6, 9, 10, 11, 12 and 21 (each
    # manager came in the same or a later batch): 11 rows, 2 a batch.
    assert links.count() == 6
    assert {e.context_data["phase"] for e in links} == {"link"}
    # The run itself wrote them: no operator's name.
    assert set(failed.union(batches, links).values_list("actor", flat=True)) == {""}


def test_rows_referencing_each_other_are_deleted_in_one_run(staff):
    legacy, target, _ = staff
    run("--batch-size", "2")
    with legacy.begin() as conn:
        # Each in its own batch of 1: a boss deleted before its report (31, then 9), a
        # report before its boss (1, then 2), and the cycle 10 ↔ 11.
        conn.exec_driver_sql("DELETE FROM employees WHERE id IN (1, 2, 9, 10, 11, 31)")
    document = run("--batch-size", "1")
    entity = document["entities"]["employee"]
    assert document["session"]["status"] == "completed"
    # The six deletes are applied; the three quarantined rows are retried and fail again.
    assert (entity["deleted"], entity["retry"]) == (6, 3)
    assert (entity["processed"], entity["failed"]) == (6, 3)
    rows = destination(target)
    assert not {"1", "2", "9", "10", "11", "31"} & set(rows)
    assert rows["3"] == ("link 3", "4")


def test_a_not_null_self_reference_column_is_refused_at_import(staff):
    _, _, tmp_path = staff
    path = tmp_path / "strict.yaml"
    path.write_text(MAPPING.format(table="employee_strict"), encoding="utf-8")
    result = cli("mappings", "import", str(path))
    assert result.code == 2
    assert "reference: self fills 'manager_id' in a second pass" in result.out + result.err
    assert "must be nullable" in result.out + result.err


def test_the_writer_links_unlinks_and_matches_rows_on_sqlite(tmp_path):
    """The embedded demo's destination: the second pass's UPDATEs and adoption's lookup."""
    import datetime as dt
    import uuid

    from migrationsapp.engine.connectors import ConnectionSpec, open_database
    from migrationsapp.engine.load import TableWriter
    from tests.databases import services_policy

    path = tmp_path / "target.db"
    raw = sa.create_engine(f"sqlite:///{path}")
    with raw.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE employee (id TEXT PRIMARY KEY, name TEXT, hired DATE, "
            "manager_id TEXT NULL REFERENCES employee (id))"
        )
    raw.dispose()
    db = open_database(
        ConnectionSpec(name="target", url=f"sqlite:///{path}"), services_policy(tmp_path), {}
    )
    try:
        writer = TableWriter(db, db.require_table("employee"), "id")
        a, b, ghost = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        day = dt.date(2024, 3, 1)
        columns = ["name", "hired", "manager_id"]
        writer.upsert(
            [
                {"id": a, "name": "a", "hired": day, "manager_id": None},
                {"id": b, "name": "b", "hired": day, "manager_id": None},
            ],
            columns,
        )
        refused = writer.update_columns(
            [{"id": a, "manager_id": b}, {"id": b, "manager_id": ghost}], ["manager_id"]
        )
        assert list(refused) == [b] and "FOREIGN KEY" in refused[b]
        assert writer.update_columns([{"id": b, "manager_id": a}], ["manager_id"]) == {}
        assert writer.rows_matching(["name", "hired"], [("a", day), ("zz", day)]) == {
            ("a", day): [a]
        }
        assert writer.clear_columns([a, b], ["manager_id"]) == {}
        assert writer.delete([a, b]) == {}
    finally:
        db.close()
