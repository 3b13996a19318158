"""The bad-data corpus through `diffmig run`: each dirty case gives exactly its outcome.

One MariaDB legacy database (``corpus.py``) holds NUL bytes, bytes that are not UTF-8,
4-byte characters, a huge text, zero and impossible dates, numbers and text out of range
for their destination columns, NULL and duplicate keys, a child whose parent was deleted
long ago and, later, a parent deleted under its children. One run migrates everything
that can be, quarantines each bad row alone with its field and exact reason, and counts
processed + failed + skipped = new + modified + deleted + retry for every entity. A
second run (with the bad values still there) retries exactly the quarantined rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from migrationsapp.models import (
    MigrationExecutionLog,
    MigrationStatus,
    QuarantinedRecord,
    RecordMap,
)
from migrationsapp.models.choices import LogLevel
from tests.databases import engine_for
from tests.integration.conftest import cli
from tests.integration.dirty_data.corpus import (
    CASES,
    MAPPING,
    create_destination,
    create_legacy,
)
from tests.support.reliability import record

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

KINDS = ("new", "modified", "deleted", "retry")
DONE = ("processed", "failed", "skipped")


@pytest.fixture
def corpus(mysql_to_pg, tmp_path) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    legacy_url, target_url = mysql_to_pg
    legacy, target = engine_for(legacy_url), engine_for(target_url)
    create_legacy(legacy)
    create_destination(target)
    path = tmp_path / "corpus.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    imported = cli("mappings", "import", str(path))
    assert imported.code == 0, imported.err
    yield legacy, target
    legacy.dispose()
    target.dispose()


def run(*args: str) -> tuple[int, dict]:
    result = cli("run", "--json", *args)
    assert result.out, result.err
    return result.code, json.loads(result.out)


def open_quarantine(entity: str) -> dict[str, tuple[str, str]]:
    return {
        key: (field, reason)
        for key, field, reason in QuarantinedRecord.objects.filter(
            entity_type=entity, resolved_at__isnull=True
        ).values_list("legacy_key_text", "field", "reason")
    }


def destination_rows(target: sa.Engine, table: str) -> dict[str, dict]:
    by_uuid = dict(
        RecordMap.objects.filter(deleted_at__isnull=True).values_list(
            "destination_uuid", "legacy_key_text"
        )
    )
    with target.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {table}")).mappings().all()
    return {by_uuid[row["id"]]: dict(row) for row in rows}


def assert_counts_add_up(document: dict) -> None:
    """processed + failed + skipped = new + modified + deleted + retry, for every entity."""
    for entity, counts in document["entities"].items():
        assert sum(counts[k] for k in DONE) == sum(counts[k] for k in KINDS), (entity, counts)


def test_every_dirty_case_gives_its_outcome_through_diffmig_run(corpus):
    legacy, target = corpus

    code, document = run()

    # `dupe` is refused as a whole (its key identifies no record), so the session fails;
    # every other entity completes, its bad rows quarantined one by one.
    assert code == 1
    entities = document["entities"]
    assert document["session"]["status"] == "failed"
    assert {e: c["status"] for e, c in entities.items()} == {
        "dirty_value": "completed",
        "parent": "completed",
        "child": "completed",
        "coded": "completed",
        "dupe": "failed",
    }
    assert_counts_add_up(document)

    # Values: each bad value fails its row alone, naming the field; the rest migrate as is.
    failing = {str(c.id): c.failure for c in CASES if c.failure}
    assert (entities["dirty_value"]["new"], entities["dirty_value"]["failed"]) == (
        len(CASES),
        len(failing),
    )
    assert open_quarantine("dirty_value") == {
        key: (field, f"field {field!r}: {reason}") for key, (field, reason) in failing.items()
    }
    rows = destination_rows(target, "dirty_value")
    assert sorted(rows) == sorted(str(c.id) for c in CASES if not c.failure)
    for case in CASES:
        if not case.failure:
            got = {column: rows[str(case.id)][column] for column in case.migrated}
            assert got == case.migrated, case.name

    # A child whose parent is gone from the legacy database fails alone.
    assert open_quarantine("child") == {
        "12": ("parent_id", "field 'parent_id': missing parent: parent '9' has not been migrated")
    }
    assert sorted(destination_rows(target, "child")) == ["10", "11"]

    # NULL keys identify no record: left out of the change set, and said so; the text
    # 'None' is a key like any other.
    assert entities["coded"]["new"] == 2
    assert sorted(destination_rows(target, "coded")) == ["A", "None"]
    (warning,) = MigrationExecutionLog.objects.filter(
        entity_type="coded", log_level=LogLevel.WARN
    ).values_list("message", flat=True)
    assert warning == (
        "coded: 2 source row(s) have NULL in source_key ['code'] and are not migrated (a NULL "
        "identifies no record): code=NULL; code=NULL; give them a key in the source, or "
        "choose key columns without NULLs"
    )

    # Duplicate keys: the entity is refused before anything is written, naming a key.
    session = MigrationStatus.objects.get(migration_session_id=document["session"]["id"])
    assert session.error_summary["entities"] == {
        "dupe": "entity 'dupe': source_key ['code'] is not unique in table 'dupes' (key 'X2' "
        "is on more than one row); choose columns that identify one row"
    }
    assert destination_rows(target, "dupe") == {}

    # Verify: the migrated rows are equal; the quarantined ones were never migrated.
    verified = cli("verify", "--json", "--entity", "dirty_value")
    assert verified.code == 0, verified.out
    report = json.loads(verified.out)["entities"]["dirty_value"]
    assert (report["compared"], report["quarantined"]) == (len(rows), len(failing))
    assert report["counts"]["quarantined_not_migrated"] == len(failing)

    # A parent deleted under its children: the destination refuses the delete (a child
    # still points at it); that one record fails, with the reason, and is tried again.
    with legacy.begin() as conn:
        conn.exec_driver_sql("DELETE FROM parents WHERE id = 2")
    code, again = run("--entity", "child")
    assert (code, again["session"]["status"]) == (0, "completed")
    assert_counts_add_up(again)
    parent, child = again["entities"]["parent"], again["entities"]["child"]
    assert tuple(parent[k] for k in ("deleted", "unchanged", "processed", "failed")) == (1, 1, 0, 1)
    assert tuple(child[k] for k in ("unchanged", "retry", "processed", "failed")) == (2, 1, 0, 1)
    ((_, reason),) = open_quarantine("parent").values()
    assert list(open_quarantine("parent")) == ["2"]
    assert reason.startswith(
        'destination refused the row: update or delete on table "parent" violates foreign '
        'key constraint "child_parent_id_fkey" on table "child"'
    )
    assert sorted(destination_rows(target, "parent")) == ["1", "2"]

    # The bad values are still there: the next run retries exactly the quarantined rows.
    code, retried = run("--entity", "dirty_value")
    assert code == 0
    assert_counts_add_up(retried)
    counts = retried["entities"]["dirty_value"]
    assert tuple(counts[k] for k in ("new", "modified", "unchanged", "retry", "failed")) == (
        0,
        0,
        len(CASES) - len(failing),
        len(failing),
        len(failing),
    )
    assert open_quarantine("dirty_value") == {
        key: (field, f"field {field!r}: {reason}") for key, (field, reason) in failing.items()
    }

    held = len(CASES) + 2 + 1 + 1 + 1  # values, NULL keys, duplicate key, orphan, parent
    record(
        "dirty data",
        "legacy values PostgreSQL refuses or that do not convert (NUL bytes, invalid UTF-8, "
        "zero and impossible dates, numbers and text out of range)",
        tried=len(failing),
        held=len(failing),
        outcome="that row alone fails, quarantined with the field and the exact reason; "
        "the entity completes and its dependants run",
    )
    record(
        "dirty data",
        "legacy values that must migrate unchanged (4-byte characters, a 2.5 MB text, "
        "valid UTF-8 bytes, zero and impossible dates through legacy_date)",
        tried=len(CASES) - len(failing),
        held=len(CASES) - len(failing),
        outcome="migrated exactly; verify finds them equal",
    )
    record(
        "dirty data",
        "NULL keys, duplicate keys, an orphan child, a parent deleted under its children",
        tried=held - len(CASES),
        held=held - len(CASES),
        outcome="NULL-keyed rows reported and left out; duplicates refuse the entity naming "
        "a key; the orphan and the refused delete fail alone and are retried; "
        "processed + failed + skipped = analysed",
    )
