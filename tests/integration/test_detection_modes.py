"""`detection: timestamp` and `detection: hybrid` on the real services (MariaDB → PostgreSQL).

A small `items` table with an `updated_at` column: the timestamp window must find inserts and
updates (with its overlap, and rows sharing a timestamp across a batch boundary), say
plainly what it cannot see (a silent update, a hard delete), and move its cursor only when a
run completes. Hybrid detection finds the hard delete too.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from migrationsapp.models import (
    DifferentialAnalysisResult,
    MigrationExecutionLog,
    QuarantinedRecord,
)
from migrationsapp.services import runs
from migrationsapp.services.cursors import stored_cursor
from tests.databases import engine_for
from tests.integration.conftest import cli
from tests.support.scratch_pair import create_tables, import_mapping_file

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

T0 = dt.datetime(2024, 3, 1, 9, 0, 0)
SILENT = "silent updates (changes that do not touch the timestamp)"

ENTITIES = """\
  - name: item
    source_table: items
    source_key: [id]
    destination_table: item
    destination_key: id
    detection: {detection}
    timestamp_column: updated_at
    max_delete_share: 0.5
    fields:
      - {{source: id, destination: legacy_id}}
      - {{source: name, destination: name}}
      - {{source: price, destination: price}}
    validation:
      - {{field: name, rule: required}}
"""


class Legacy:
    """The legacy `items` table, written with plain SQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def execute(self, sql: str, **params) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql), params)

    def insert(self, id_: int, name: str, price: int, updated_at: dt.datetime | None) -> None:
        self.execute(
            "INSERT INTO items (id, name, price, updated_at) VALUES (:i, :n, :p, :t)",
            i=id_,
            n=name,
            p=price,
            t=updated_at,
        )


@pytest.fixture
def setup(mysql_to_pg, tmp_path):
    """Tables on both sides and a loader of the mapping file in a given detection mode."""
    legacy_url, target_url = mysql_to_pg
    legacy, target = engine_for(legacy_url), engine_for(target_url)
    create_tables(
        legacy,
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), price INT, "
        "updated_at DATETIME NULL, note VARCHAR(50))",
    )
    create_tables(
        target,
        "CREATE TABLE item (id uuid PRIMARY KEY, legacy_id integer, name text, price integer)",
    )

    def load(detection: str) -> None:
        import_mapping_file(tmp_path / f"{detection}.yaml", ENTITIES.format(detection=detection))

    yield Legacy(legacy), target, load
    legacy.dispose()
    target.dispose()


def run(*args: str) -> dict:
    result = cli("run", "--json", *args)
    assert result.out, result.err
    document = json.loads(result.out)
    assert document["session"]["status"] == "completed", document
    return document


def counts(document: dict) -> dict:
    entity = document["entities"]["item"]
    return {k: entity[k] for k in ("new", "modified", "deleted", "unchanged", "retry")}


def outcome(document: dict) -> dict:
    entity = document["entities"]["item"]
    return {k: entity[k] for k in ("processed", "failed", "skipped")}


def latest_analysis() -> DifferentialAnalysisResult:
    return DifferentialAnalysisResult.objects.filter(entity_type="item").latest(
        "analysis_timestamp"
    )


def destination(target: sa.Engine) -> dict[int, tuple[str, int]]:
    with target.connect() as conn:
        rows = conn.exec_driver_sql("SELECT legacy_id, name, price FROM item").all()
    return {legacy_id: (name, price) for legacy_id, name, price in rows}


def cursor() -> tuple[str, str] | None:
    stored = stored_cursor("item")
    return None if stored is None else (stored.cursor.timestamp, stored.cursor.key_text)


def hours(n: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=n)


def test_timestamp_mode_finds_inserts_and_updates_and_says_what_it_misses(setup):
    legacy, target, load = setup
    load("timestamp")
    for i in range(1, 6):
        legacy.insert(i, f"item {i}", 10 * i, hours(i))
    first = run()
    assert counts(first) == {"new": 5, "modified": 0, "deleted": 0, "unchanged": 0, "retry": 0}
    assert cursor() == (hours(5).isoformat(), "5")
    assert latest_analysis().analysis_metadata["full_scan"] is True

    legacy.insert(6, "item 6", 60, hours(6))  # an insert
    legacy.execute("UPDATE items SET price = 21, updated_at = :t WHERE id = 2", t=hours(7))
    legacy.execute("UPDATE items SET name = 'renamed quietly' WHERE id = 3")  # silent update
    legacy.execute("DELETE FROM items WHERE id = 4")  # hard delete
    legacy.execute("UPDATE items SET note = 'not mapped', updated_at = :t WHERE id = 1", t=hours(8))
    second = run()
    # Window: updated_at >= 14:00 - 5 min: item 5 again (unchanged), 6 (new), 2 (modified),
    # 1 (touched, but only an unmapped column changed: unchanged).
    assert counts(second) == {"new": 1, "modified": 1, "deleted": 0, "unchanged": 2, "retry": 0}
    assert outcome(second) == {"processed": 2, "failed": 0, "skipped": 0}
    rows = destination(target)
    assert rows[2] == ("item 2", 21) and rows[6] == ("item 6", 60)
    assert rows[3] == ("item 3", 30)  # the silent update is not seen ...
    assert 4 in rows  # ... nor the hard delete
    metadata = latest_analysis().analysis_metadata
    assert metadata["detection"] == "timestamp"
    assert metadata["cannot_see"] == f"hard deletes and {SILENT}"
    assert (
        metadata["window"]
        == "updated_at >= 2024-03-01T13:55:00 (cursor 2024-03-01T14:00:00 minus 5 min overlap)"
    )
    assert metadata["window_rows"] == 4
    assert metadata["cursor"]["end"]["key_text"] == "1"
    message = (
        MigrationExecutionLog.objects.filter(entity_type="item", message__contains="cannot see")
        .latest("id")
        .message
    )
    assert "timestamp detection cannot see hard deletes and silent updates" in message
    assert cursor() == (hours(8).isoformat(), "1")


def test_rows_sharing_a_timestamp_across_a_batch_boundary_are_not_lost(setup):
    legacy, target, load = setup
    load("timestamp")
    tie = hours(3)
    legacy.insert(1, "a", 1, hours(1))
    legacy.insert(2, "b", 2, hours(2))
    for i in (3, 4, 5):  # one timestamp, cut by batches of 2 (1-2 | 3-4 | 5)
        legacy.insert(i, f"tie {i}", i, tie)
    first = run("--batch-size", "2")
    assert counts(first)["new"] == 5
    assert set(destination(target)) == {1, 2, 3, 4, 5}
    assert cursor() == (tie.isoformat(), "5")

    # Without overlap the cut is strictly after the tuple (tie, 5): a row with the same
    # timestamp and a greater key is found, the tie's other rows are not read again.
    legacy.insert(7, "tie 7", 7, tie)
    second = run("--batch-size", "2", "--timestamp-overlap", "0")
    assert counts(second) == {"new": 1, "modified": 0, "deleted": 0, "unchanged": 0, "retry": 0}
    assert latest_analysis().analysis_metadata["window"] == (
        "(updated_at, key) > (2024-03-01T12:00:00, 5)"
    )
    assert cursor() == (tie.isoformat(), "7")

    # A row committed late with the cursor's timestamp and a smaller key is behind the
    # tuple: the overlap (here the default 5 minutes) is what finds it.
    legacy.insert(6, "tie 6, late", 6, tie)
    third = run("--batch-size", "2")
    assert counts(third) == {"new": 1, "modified": 0, "deleted": 0, "unchanged": 4, "retry": 0}
    assert set(destination(target)) == {1, 2, 3, 4, 5, 6, 7}


def test_rows_without_a_timestamp_are_read_at_every_run(setup):
    legacy, target, load = setup
    load("timestamp")
    legacy.insert(1, "dated", 1, hours(1))
    legacy.insert(2, "undated", 2, None)
    assert counts(run())["new"] == 2
    legacy.execute("UPDATE items SET name = 'undated, changed' WHERE id = 2")
    second = run()
    assert counts(second) == {"new": 0, "modified": 1, "deleted": 0, "unchanged": 1, "retry": 0}
    assert destination(target)[2] == ("undated, changed", 2)
    assert cursor() == (hours(1).isoformat(), "1")  # NULL never becomes the cursor


def test_quarantined_rows_outside_the_window_are_retried(setup):
    legacy, target, load = setup
    load("timestamp")
    legacy.insert(1, "fine", 1, hours(1))
    legacy.insert(2, "", 2, hours(2))  # refused: name is required
    legacy.insert(3, "latest", 3, hours(5))
    first = run()
    assert outcome(first) == {"processed": 2, "failed": 1, "skipped": 0}
    # Fixed without touching the timestamp: far behind the window, but in quarantine.
    legacy.execute("UPDATE items SET name = 'fixed' WHERE id = 2")
    second = run()
    assert counts(second) == {"new": 1, "modified": 0, "deleted": 0, "unchanged": 1, "retry": 0}
    assert destination(target)[2] == ("fixed", 2)
    assert not QuarantinedRecord.objects.filter(resolved_at__isnull=True).exists()
    assert latest_analysis().analysis_metadata["retried_outside_window"] == 1


def test_baseline_ignores_the_cursor(setup):
    legacy, target, load = setup
    load("timestamp")
    for i in (1, 2, 3):
        legacy.insert(i, f"item {i}", i, hours(i))
    run()
    legacy.execute("UPDATE items SET name = 'silently' WHERE id = 1")
    document = run("--baseline")
    assert counts(document) == {"new": 0, "modified": 3, "deleted": 0, "unchanged": 0, "retry": 0}
    assert destination(target)[1] == ("silently", 1)
    assert "--baseline" in latest_analysis().analysis_metadata["window"]


def test_hybrid_mode_also_finds_hard_deletes(setup):
    legacy, target, load = setup
    load("hybrid")
    for i in range(1, 6):
        legacy.insert(i, f"item {i}", i, hours(i))
    run()
    legacy.execute("DELETE FROM items WHERE id = 2")
    legacy.execute("UPDATE items SET name = 'quietly' WHERE id = 3")
    legacy.insert(6, "item 6", 6, hours(6))
    document = run()
    assert counts(document) == {"new": 1, "modified": 0, "deleted": 1, "unchanged": 1, "retry": 0}
    assert outcome(document) == {"processed": 2, "failed": 0, "skipped": 0}
    rows = destination(target)
    assert set(rows) == {1, 3, 4, 5, 6}
    assert rows[3] == ("item 3", 3)  # the silent update is still not seen
    metadata = latest_analysis().analysis_metadata
    assert metadata["cannot_see"] == SILENT
    assert metadata["source_keys"] == 5


def test_hash_mode_says_it_misses_nothing(setup):
    legacy, _, load = setup
    load("hash")
    legacy.insert(1, "a", 1, hours(1))
    run()
    metadata = latest_analysis().analysis_metadata
    assert metadata["detection"] == "hash"
    assert metadata["cannot_see"] == ""
    assert cursor() is None


def test_cursor_advances_only_after_a_completed_run(setup):
    legacy, target, load = setup
    load("timestamp")
    legacy.insert(1, "a", 1, hours(1))
    run()
    assert cursor() == (hours(1).isoformat(), "1")
    legacy.insert(2, "b", 2, hours(2))

    # An analysis alone, and a dry run, leave the cursor where it is.
    assert cli("analyze", "--json").code == 0
    run("--dry-run")
    assert cursor() == (hours(1).isoformat(), "1")

    # A run that fails after writing (a crash between the two commits) leaves it too.
    def crash(point: str) -> None:
        if point == "after_destination_commit":
            raise RuntimeError("worker killed")

    session = runs.run_session(fault=crash)
    assert session.overall_status == "failed"
    assert cursor() == (hours(1).isoformat(), "1")

    # Resumed to completion, it moves to what that run's analysis saw.
    runs.prepare_resume(session_id=session.migration_session_id)
    resumed = runs.execute_session(session_id=session.migration_session_id)
    assert resumed.overall_status == "completed"
    assert cursor() == (hours(2).isoformat(), "2")
    assert set(destination(target)) == {1, 2}
    announced = MigrationExecutionLog.objects.filter(message__contains="cursor advanced")
    assert list(announced.order_by("id").values_list("message", flat=True)) == [
        "item: timestamp cursor advanced to (2024-03-01T10:00:00, 1)",
        "item: timestamp cursor advanced to (2024-03-01T11:00:00, 2)",
    ]
    assert set(announced.values_list("action", "actor")) == {("entity.cursor_advanced", "")}


# --- the window's reads on every source dialect ---------------------------------------------

STAMPS = [
    # id, name, stamp
    (1, "a", dt.datetime(2024, 3, 1, 9, 0)),
    (2, "b", dt.datetime(2024, 3, 1, 10, 0)),
    (3, "tie c", dt.datetime(2024, 3, 1, 11, 0)),
    (4, "tie d", dt.datetime(2024, 3, 1, 11, 0)),
    (5, "tie é", dt.datetime(2024, 3, 1, 11, 0)),
    (6, None, None),
    (7, "later", dt.datetime(2024, 3, 1, 12, 0)),
]


@pytest.fixture(params=["mysql", "postgresql", "sqlite"])
def stamped(request, tmp_path):
    """A `stamps` table on each source dialect, opened as diffmig opens a source."""
    from migrationsapp.engine.connectors import ConnectionSpec, open_database
    from tests.databases import (
        create_mysql_database,
        create_postgres_database,
        drop_mysql_database,
        drop_postgres_database,
        services_policy,
    )

    dialect = request.param
    if dialect == "mysql":
        url = create_mysql_database("stamps")
    elif dialect == "postgresql":
        url = create_postgres_database("stamps")
    else:
        url = f"sqlite:///{tmp_path / 'stamps.db'}"
    raw = engine_for(url)
    stamp_type = "timestamp" if dialect == "postgresql" else "DATETIME"
    with raw.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE stamps (id INT PRIMARY KEY, name VARCHAR(20), stamp {stamp_type} NULL)"
        )
        conn.execute(
            sa.text("INSERT INTO stamps (id, name, stamp) VALUES (:i, :n, :s)"),
            [{"i": i, "n": n, "s": s} for i, n, s in STAMPS],
        )
    raw.dispose()
    db = open_database(
        ConnectionSpec(name="legacy", url=url), services_policy(tmp_path), environ={}
    )
    yield db
    db.close()
    if dialect == "mysql":
        drop_mysql_database(url)
    elif dialect == "postgresql":
        drop_postgres_database(url)


def window(db, **bounds) -> list[tuple[tuple, str, object]]:
    return [
        row
        for batch in db.stream_key_hashes_by_timestamp(
            "stamps", ["id"], ["id", "name"], "stamp", batch_size=2, **bounds
        )
        for row in batch
    ]


def test_the_window_hashes_rows_exactly_as_a_full_scan_does(stamped):
    full = {
        key: digest
        for batch in stamped.stream_key_hashes("stamps", ["id"], ["id", "name"])
        for key, digest in batch
    }
    rows = window(stamped)
    assert {key: digest for key, digest, _ in rows} == full
    # NULL timestamps first, then by (timestamp, key).
    assert [key[0] for key, _, _ in rows] == [6, 1, 2, 3, 4, 5, 7]
    assert stamped.fetch_key_hashes("stamps", ["id"], ["id", "name"], [(4,), ("6",), (99,)]) == {
        (4,): full[(4,)],
        (6,): full[(6,)],
    }


def test_the_window_starts_at_a_timestamp_or_strictly_after_a_tuple(stamped):
    from migrationsapp.engine.cursor import Cursor, shift_back

    # Bounds are made as the engine makes them: from the values the source gives back
    # (SQLite keeps its own text, '2024-03-01 11:00:00').
    stamps = {key[0]: stamp for key, _, stamp in window(stamped)}
    tie = Cursor.at(stamps[4], (4,))
    kind = stamped.require_table("stamps").column("stamp").kind
    since = shift_back(tie.timestamp, dt.timedelta(minutes=5), kind)
    assert since is not None and since.replace("T", " ") == "2024-03-01 10:55:00"
    inclusive = [key[0] for key, _, _ in window(stamped, since=since)]
    assert inclusive == [6, 3, 4, 5, 7]
    after = [key[0] for key, _, _ in window(stamped, since=tie.timestamp, after_key=tie.key)]
    assert after == [6, 5, 7]
