"""Adopting existing destination rows by `match_on` (MariaDB → PostgreSQL).

The destination already holds customers (entered before diffmig, with their own UUIDs and a
column diffmig does not map). A first run must adopt them by email instead of inserting
duplicates, say so in the record events, insert only the truly new customer, and refuse a
second source record that matches an already adopted row; later runs update the adopted
rows through the record map.
"""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from migrationsapp.models import QuarantinedRecord, RecordEvent, RecordMap
from tests.databases import engine_for
from tests.integration.conftest import cli

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

MAPPING = """
version: 1
connections:
  legacy: {url: "${DIFFMIG_LEGACY_URL}"}
  target: {url: "${DIFFMIG_TARGET_URL}"}
source: legacy
destination: target
entities:
  - name: customer
    source_table: customers
    source_key: [id]
    destination_table: customer
    destination_key: id
    match_on: [email]
    fields:
      - {source: id, destination: legacy_id}
      - {source: email, destination: email, transform: email}
      - {source: name, destination: name}
"""

ANN = uuid.UUID("00000000-0000-4000-8000-00000000000a")
BOB = uuid.UUID("00000000-0000-4000-8000-00000000000b")
CAT = uuid.UUID("00000000-0000-4000-8000-00000000000c")


@pytest.fixture
def adopted(mysql_to_pg, tmp_path):
    legacy_url, target_url = mysql_to_pg
    legacy, target = engine_for(legacy_url), engine_for(target_url)
    with legacy.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(80), name VARCHAR(50))"
        )
        conn.execute(
            sa.text("INSERT INTO customers (id, email, name) VALUES (:i, :e, :n)"),
            [
                {"i": 1, "e": "ann@example.com", "n": "Ann (legacy)"},
                {"i": 2, "e": "Bob@Example.com ", "n": "Bob (legacy)"},  # matches once cleaned
                {"i": 3, "e": "dan@example.com", "n": "Dan"},  # new
                {"i": 4, "e": "ANN@example.com", "n": "Ann, twice"},  # ann's row is taken
                {"i": 5, "e": None, "n": "no email"},  # NULL matches nothing: inserted
            ],
        )
    with target.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE customer (id uuid PRIMARY KEY, email text UNIQUE, name text, "
            "legacy_id integer, origin text NOT NULL DEFAULT 'diffmig')"
        )
        conn.execute(
            sa.text("INSERT INTO customer (id, email, name, origin) VALUES (:u, :e, :n, 'crm')"),
            [
                {"u": ANN, "e": "ann@example.com", "n": "Ann"},
                {"u": BOB, "e": "bob@example.com", "n": "Bob"},
                {"u": CAT, "e": "cat@example.com", "n": "Cat"},  # not in the source
            ],
        )
    path = tmp_path / "customers.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    result = cli("mappings", "import", str(path))
    assert result.code == 0, result.out + result.err
    yield legacy, target
    legacy.dispose()
    target.dispose()


def run(*args: str) -> dict:
    result = cli("run", "--json", *args)
    assert result.out, result.err
    document = json.loads(result.out)
    assert document["session"]["status"] == "completed", document
    return document["entities"]["customer"]


def destination(target: sa.Engine) -> dict[uuid.UUID, tuple]:
    with target.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, email, name, legacy_id, origin FROM customer").all()
    return {row[0]: tuple(row[1:]) for row in rows}


def mapped() -> dict[str, uuid.UUID]:
    return dict(
        RecordMap.objects.filter(entity_type="customer").values_list(
            "legacy_key_text", "destination_uuid"
        )
    )


@pytest.mark.parametrize("batch_size", ["1", "100"])
def test_existing_destination_rows_are_adopted_not_duplicated(adopted, batch_size):
    legacy, target = adopted
    entity = run("--batch-size", batch_size)
    assert (entity["new"], entity["processed"], entity["failed"]) == (5, 4, 1)

    keys = mapped()
    assert keys["1"] == ANN and keys["2"] == BOB
    rows = destination(target)
    assert len(rows) == 5  # ann, bob, cat (kept), dan and the customer without email
    assert rows[ANN] == ("ann@example.com", "Ann (legacy)", 1, "crm")
    assert rows[BOB] == ("bob@example.com", "Bob (legacy)", 2, "crm")
    assert rows[CAT] == ("cat@example.com", "Cat", None, "crm")
    assert rows[keys["3"]] == ("dan@example.com", "Dan", 3, "diffmig")
    assert rows[keys["5"]] == (None, "no email", 5, "diffmig")

    event = RecordEvent.objects.get(entity_type="customer", legacy_key_text="1")
    assert (event.action, event.destination_uuid) == ("updated", ANN)
    assert event.reason == "adopted existing destination row by match_on (email)"
    assert RecordEvent.objects.get(legacy_key_text="3").action == "created"
    refused = QuarantinedRecord.objects.get(legacy_key_text="4", resolved_at__isnull=True)
    assert refused.rule == "match_on"
    assert f"destination row {ANN} is already the record of customer '1'" in refused.reason

    # Later runs update the adopted rows through the record map; nothing is duplicated.
    with legacy.begin() as conn:
        conn.exec_driver_sql("UPDATE customers SET name = 'Ann, renamed' WHERE id = 1")
    second = run()
    assert (second["modified"], second["retry"], second["processed"]) == (1, 1, 1)
    rows = destination(target)
    assert len(rows) == 5
    assert rows[ANN] == ("ann@example.com", "Ann, renamed", 1, "crm")
    events = list(
        RecordEvent.objects.filter(legacy_key_text="1").order_by("id").values_list("action")
    )
    assert events == [("updated",), ("updated",)]
    assert RecordEvent.objects.filter(legacy_key_text="1").last().reason == ""


def test_a_record_matching_several_destination_rows_is_not_adopted(adopted):
    _, target = adopted
    with target.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE customer DROP CONSTRAINT customer_email_key")
        conn.exec_driver_sql(
            "INSERT INTO customer (id, email, name, origin) "
            "VALUES ('00000000-0000-4000-8000-0000000000a2', 'ann@example.com', 'Ann 2', 'crm')"
        )
    entity = run()
    assert entity["failed"] == 2  # ann and her duplicate: both match two rows
    refused = QuarantinedRecord.objects.get(legacy_key_text="1", resolved_at__isnull=True)
    assert "matches 2 destination rows" in refused.reason
    assert len(destination(target)) == 6  # nothing was written for ann
