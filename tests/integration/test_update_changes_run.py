"""A differential run keeps, per `updated` event, the destination fields it changed.

Through real runs (MariaDB → PostgreSQL, and the embedded SQLite default): a record whose
source changed has its changed fields stored with their values before and after; a record
rewritten under a new mapping version with nothing different has an empty set, which the
lookup page reads as "rewritten, no field changed (mapping v1 → v2)". The lookup page shows
the values to an operator and the field names only to an auditor.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from django.urls import reverse

from migrationsapp.models import RecordEvent
from tests.databases import engine_for
from tests.integration.conftest import cli
from tests.support.reliability import record
from tests.support.scratch_pair import create_tables, import_mapping_file

pytestmark = [pytest.mark.django_db(transaction=True)]

ENTITIES = """\
  - name: item
    source_table: items
    source_key: [id]
    destination_table: item
    destination_key: id
    fields:
      - {{source: id, destination: legacy_id}}
      - {{source: name, destination: name}}
      - {{source: price, destination: price}}
      - {{source: note, destination: note}}
    validation:
      - {{field: name, rule: required}}{extra}
"""
# A second version of the mapping that writes every field as the first did.
EXTRA_RULE = "\n      - {field: price, rule: required}"

LEGACY_ROWS = [(1, "alpha", "1.50", "first"), (2, "beta", "2.00", None), (3, "gamma", "3.25", "x")]


def prepare(legacy: sa.Engine, target: sa.Engine, *, decimal: str, money: str) -> None:
    with legacy.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(50), price {decimal}, "
            "note VARCHAR(200))"
        )
        for row in LEGACY_ROWS:
            conn.execute(
                sa.text("INSERT INTO items VALUES (:i, :n, :p, :o)"),
                dict(zip("inpo", row, strict=True)),
            )
    create_tables(
        target,
        f"CREATE TABLE item (id uuid PRIMARY KEY, legacy_id integer, name text, "
        f"price {money}, note text)",
    )


def import_mapping(tmp_path, extra: str = "") -> None:
    import_mapping_file(tmp_path / f"mapping{len(extra)}.yaml", ENTITIES.format(extra=extra))


def run() -> dict:
    result = cli("run", "--json")
    assert result.out, result.err
    document = json.loads(result.out)
    assert document["session"]["status"] == "completed", document
    return document["entities"]["item"]


def change_and_rewrite(tmp_path, legacy: sa.Engine) -> None:
    """Baseline; then record 1 changes in the source and the mapping gets a version 2."""
    import_mapping(tmp_path)
    assert run()["processed"] == 3
    with legacy.begin() as conn:
        conn.exec_driver_sql("UPDATE items SET name = 'Alpha', note = NULL WHERE id = 1")
    import_mapping(tmp_path, EXTRA_RULE)
    counts = run()
    assert (counts["modified"], counts["processed"], counts["failed"]) == (3, 3, 0)


def updates() -> dict[str, dict]:
    events = RecordEvent.objects.filter(entity_type="item", action="updated")
    return {e.legacy_key_text: (e.mapping_version, e.changes) for e in events}


def assert_lookup_pages(client, operator, auditor) -> None:
    url = reverse("audit:lookup") + "?entity=item&key="
    client.force_login(operator)
    page = client.get(url + "1").content.decode()
    assert '<td class="mono field">name</td>' in page
    assert '<td class="before keep-spaces">“alpha”</td>' in page
    assert '<td class="after keep-spaces">“Alpha”</td>' in page
    assert '<td class="before keep-spaces">“first”</td>' in page
    assert '<td class="after keep-spaces">NULL</td>' in page
    rewritten = client.get(url + "2").content.decode()
    assert "rewritten, no field changed (mapping v1 → v2)" in rewritten

    client.force_login(auditor)
    page = client.get(url + "1").content.decode()
    assert (
        '<span class="changed-names"><span class="mono field">name</span>, '
        '<span class="mono field">note</span></span>'
    ) in page
    assert "alpha" not in page and "first" not in page  # no value before
    assert "“Alpha”" not in page
    assert "Field names only" in page
    assert "rewritten, no field changed (mapping v1 → v2)" in client.get(url + "2").content.decode()


@pytest.mark.services
def test_a_mariadb_to_postgresql_run_keeps_each_updates_changed_fields(
    mysql_to_pg, tmp_path, client, operator, auditor
):
    legacy_url, target_url = mysql_to_pg
    legacy, target = engine_for(legacy_url), engine_for(target_url)
    prepare(legacy, target, decimal="DECIMAL(8, 2)", money="numeric(8, 2)")
    change_and_rewrite(tmp_path, legacy)

    assert updates() == {
        "1": (2, {"name": ["alpha", "Alpha"], "note": ["first", None]}),
        "2": (2, {}),
        "3": (2, {}),
    }
    assert [e.changes for e in RecordEvent.objects.filter(action="created")] == [None] * 3
    found = json.loads(cli("lookup", "item", "1", "--json").out)
    assert [e["changed_fields"] for e in found["events"]] == [None, ["name", "note"]]
    assert_lookup_pages(client, operator, auditor)
    legacy.dispose()
    target.dispose()
    record(
        "dirty data",
        "an update's changed fields through a MariaDB → PostgreSQL differential run",
        tried=3,
        held=3,
        outcome="a changed record keeps its fields before/after; a rewrite keeps none",
    )


@pytest.mark.embedded
def test_an_embedded_sqlite_run_keeps_each_updates_changed_fields(
    tmp_path, settings, monkeypatch, client, operator, auditor
):
    settings.DIFFMIG_SQLITE_ROOT = tmp_path
    settings.REDIS_URL = None
    legacy_url = f"sqlite:///{tmp_path / 'legacy.sqlite3'}"
    target_url = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", legacy_url)
    monkeypatch.setenv("DIFFMIG_TARGET_URL", target_url)
    legacy, target = sa.create_engine(legacy_url), sa.create_engine(target_url)
    prepare(legacy, target, decimal="NUMERIC", money="NUMERIC")
    change_and_rewrite(tmp_path, legacy)

    assert updates() == {
        "1": (2, {"name": ["alpha", "Alpha"], "note": ["first", None]}),
        "2": (2, {}),
        "3": (2, {}),
    }
    assert_lookup_pages(client, operator, auditor)
    legacy.dispose()
    target.dispose()
    record(
        "dirty data",
        "an update's changed fields through an embedded SQLite differential run",
        tried=3,
        held=3,
        outcome="a changed record keeps its fields before/after; a rewrite keeps none",
    )
