"""The quarantine hides nothing: every open entry is retried, and verify checks its row.

A small legacy table of people (MariaDB) migrates into PostgreSQL; the name is required.
A record that was migrated and then quarantined stays in every later change set until it
succeeds — also when its source goes back to the content last migrated (its hash equals
the record map's) and when it failed on a re-send of unchanged content (a `--baseline` run
the destination refused). And `verify` compares quarantined records too: a quarantined
record's destination row that was changed or deleted by hand is a mismatch (exit 1).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from migrationsapp.models import QuarantinedRecord, RecordMap
from tests.databases import engine_for
from tests.integration.conftest import cli
from tests.support.reliability import record
from tests.support.scratch_pair import import_mapping_file

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ENTITIES = """\
  - name: person
    source_table: people
    source_key: [id]
    destination_table: person
    destination_key: id
    fields:
      - {source: id, destination: legacy_id}
      - {source: name, destination: name, required: true}
"""


@dataclass
class People:
    legacy: sa.Engine
    target: sa.Engine

    def legacy_sql(self, statement: str, **params) -> None:
        with self.legacy.begin() as conn:
            conn.execute(sa.text(statement), params)

    def target_sql(self, statement: str, **params) -> None:
        with self.target.begin() as conn:
            conn.execute(sa.text(statement), params)

    def names(self) -> dict[int, str]:
        with self.target.connect() as conn:
            return dict(conn.execute(sa.text("SELECT legacy_id, name FROM person")).all())


@pytest.fixture
def people(mysql_to_pg, tmp_path) -> Iterator[People]:
    legacy_url, target_url = mysql_to_pg
    found = People(legacy=engine_for(legacy_url), target=engine_for(target_url))
    found.legacy_sql("CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(40))")
    found.legacy_sql("INSERT INTO people VALUES (1, 'Ann'), (2, 'Bob'), (3, 'Cy')")
    found.target_sql("CREATE TABLE person (id uuid PRIMARY KEY, legacy_id integer, name text)")
    import_mapping_file(tmp_path / "people.yaml", ENTITIES)
    yield found
    found.legacy.dispose()
    found.target.dispose()


def run(*args: str) -> dict:
    result = cli("run", "--json", *args)
    assert result.out, result.err
    return json.loads(result.out)["entities"]["person"]


def analyze() -> dict:
    result = cli("analyze", "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)["entities"]["person"]


def verify() -> tuple[int, dict]:
    result = cli("verify", "--json")
    return result.code, json.loads(result.out)["entities"]["person"]


def counts(document: dict) -> tuple[int, ...]:
    return tuple(
        document[k]
        for k in ("new", "modified", "deleted", "unchanged", "retry", "processed", "failed")
    )


def open_entries() -> dict[str, str]:
    return dict(
        QuarantinedRecord.objects.filter(resolved_at__isnull=True).values_list(
            "legacy_key_text", "reason"
        )
    )


def uuid_of(key: str) -> uuid.UUID:
    return RecordMap.objects.get(entity_type="person", legacy_key_text=key).destination_uuid


def test_a_quarantined_record_whose_source_went_back_is_written_again_and_resolved(people):
    assert run()["processed"] == 3
    people.legacy_sql("UPDATE people SET name = '' WHERE id = 2")
    failed = run()
    assert (failed["modified"], failed["failed"]) == (1, 1)
    assert open_entries() == {"2": "field 'name': required: source column 'name' is empty"}
    code, report = verify()
    # The source changed since the last migration: the row holds the migrated content.
    assert code == 0
    assert report["quarantined_records"] == [
        {
            "key": "2",
            "destination": "source_changed",
            "reason": "field 'name': required: source column 'name' is empty",
            "different": [],
        }
    ]

    # The source goes back to the content last migrated: same hash as the record map.
    people.legacy_sql("UPDATE people SET name = 'Bob' WHERE id = 2")
    analysis = analyze()
    # Changed since it failed, migrated before: modified — never unchanged.
    assert counts({**analysis, "processed": 0, "failed": 0})[:5] == (0, 1, 0, 2, 0)
    rerun = run()

    assert counts(rerun) == (0, 1, 0, 2, 0, 1, 0)
    assert open_entries() == {}
    assert people.names() == {1: "Ann", 2: "Bob", 3: "Cy"}
    assert verify()[1]["quarantined"] == 0
    record(
        "faults",
        "a quarantined record whose source went back to its last migrated content",
        tried=1,
        held=1,
        outcome="counted modified and written again; its quarantine entry is resolved",
    )


def test_a_record_refused_on_a_resend_of_unchanged_content_is_retried_and_verified(people):
    assert run()["processed"] == 3
    # The destination now refuses Bob's row (existing rows are not checked: NOT VALID).
    people.target_sql("ALTER TABLE person ADD CONSTRAINT no_bob CHECK (name <> 'Bob') NOT VALID")
    baseline = run("--baseline")
    assert (baseline["modified"], baseline["processed"], baseline["failed"]) == (3, 2, 1)
    (reason,) = open_entries().values()
    assert reason.startswith('destination refused the row: new row for relation "person"')
    # Its hash equals the record map's: before, the analysis called it unchanged for ever.
    assert counts({**analyze(), "processed": 0, "failed": 0})[:5] == (0, 0, 0, 2, 1)
    again = run()
    assert counts(again) == (0, 0, 0, 2, 1, 0, 1)

    # Verify compares it: the source holds the migrated content, the row must match it.
    code, report = verify()
    assert code == 0
    assert (report["quarantined"], report["counts"]["quarantined_equal"]) == (1, 1)
    assert report["quarantined_records"][0]["destination"] == "equal"

    bob = uuid_of("2")
    people.target_sql("UPDATE person SET name = 'Mallory' WHERE id = :id", id=bob)
    code, report = verify()
    assert code == 1
    assert report["different"] == []  # reported apart, not as an ordinary difference
    assert report["quarantined_records"] == [
        {
            "key": "2",
            "destination": "different",
            "reason": reason,
            "different": [{"key": "2", "field": "name", "source": "Bob", "destination": "Mallory"}],
        }
    ]
    human = cli("verify")
    assert human.code == 1
    assert (
        f"person 2 (quarantined: {reason}): its destination row differs from its last "
        "migrated content: name: expected 'Bob', found 'Mallory'" in human.out
    )

    people.target_sql("DELETE FROM person WHERE id = :id", id=bob)
    code, report = verify()
    assert code == 1
    assert report["missing"] == []
    assert report["quarantined_records"][0]["destination"] == "missing"
    assert report["counts"]["quarantined_missing"] == 1
    assert "person 2 (quarantined: " in cli("verify").out

    # The cause goes away: the next run retries it, restores the row, resolves the entry.
    people.target_sql("ALTER TABLE person DROP CONSTRAINT no_bob")
    assert counts(run()) == (0, 0, 0, 2, 1, 1, 0)
    assert open_entries() == {}
    assert people.names() == {1: "Ann", 2: "Bob", 3: "Cy"}
    code, report = verify()
    assert (code, report["quarantined"], report["compared"]) == (0, 0, 3)
    record(
        "faults",
        "a record refused on a re-send of unchanged content (hash equal to the record map's)",
        tried=1,
        held=1,
        outcome="retried by every run until it succeeds, then resolved",
    )
    record(
        "faults",
        "a quarantined record's destination row changed or deleted by hand",
        tried=2,
        held=2,
        outcome="verify reports it (different with the field, or missing) and exits 1",
    )


def test_verify_reports_a_quarantined_record_never_migrated_apart(people):
    people.legacy_sql("INSERT INTO people VALUES (4, '')")
    assert run()["failed"] == 1

    code, report = verify()

    assert code == 0
    assert report["compared"] == 3
    assert report["quarantined_records"] == [
        {
            "key": "4",
            "destination": "not_migrated",
            "reason": "field 'name': required: source column 'name' is empty",
            "different": [],
        }
    ]
