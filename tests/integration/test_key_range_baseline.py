"""A first baseline reads its source by key range (services.key_range_baseline).

Groups and items on MariaDB (integer primary keys) → PostgreSQL. An entity with nothing
migrated yet has no change set: its analysis counts the table, its upserts read it in key
order with each row's hash from the same SELECT. The destination must be exactly what the
mapping makes of the source; the next run must find nothing to do (the hashes recorded are
the analysis's); a crash between the two commits of a batch, or in a partition, must lose
and duplicate nothing; and whatever cannot be read this way keeps the analysis's change set.
The read itself (``engine.reads_key_range``) is checked on MariaDB, PostgreSQL and SQLite:
a composite key in batches, between bounds, with the hash every other read gives the row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from django.test import override_settings

from migrationsapp.engine.connectors import ConnectionSpec, open_database
from migrationsapp.engine.database import Database
from migrationsapp.engine.reads import fetch_key_hashes
from migrationsapp.engine.reads_key_range import (
    key_range_cuts,
    key_range_refusal,
    read_key_range,
)
from migrationsapp.models import (
    AnalysisChange,
    DifferentialAnalysisResult,
    MigrationCheckpoint,
    MigrationControl,
    MigrationExecutionLog,
    MigrationStatus,
    RecordMap,
)
from migrationsapp.models.choices import OperationType, SessionStatus
from migrationsapp.services.databases import open_named
from migrationsapp.services.key_range_baseline import KEY_RANGE, reads_by_key_range
from migrationsapp.services.mappings import load_active_mapping
from migrationsapp.services.runs import (
    RunOptions,
    execute_session,
    launch_session,
    prepare_resume,
    start_run,
)
from tests.databases import (
    create_mysql_database,
    create_postgres_database,
    drop_mysql_database,
    drop_postgres_database,
    engine_for,
    services_policy,
)
from tests.factories import QuarantinedRecordFactory
from tests.integration.test_jobs import redis_jobs  # noqa: F401 (fixture)
from tests.support.groups_items import Pair, expected_destination, groups_items_in
from tests.support.stages import no_stages_left  # noqa: F401 (fixture)
from tests.support.workers import workers

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_stages_left"),
]

ITEMS = 120


class Crash(BaseException):
    """The process dies here: not an Exception, so no handler of the engine swallows it."""


@pytest.fixture
def pair(mysql_to_pg) -> Iterator[Pair]:
    with groups_items_in(mysql_to_pg) as made:
        made.add_groups({k: f" group {k} " for k in range(1, 6)})
        made.add_items(
            {k: (None if k % 7 == 0 else k % 5 + 1, f" item {k} ", k * 3) for k in range(1, 121)}
        )
        yield made


def launch(**options) -> uuid.UUID:
    return launch_session(options=RunOptions(**options), user="tests").migration_session_id


def run(**options) -> MigrationStatus:
    return execute_session(session_id=launch(**options))


def reads(session_id: uuid.UUID) -> dict[str, str]:
    """entity → how its analysis read the source ("key_range", or "" for a change set)."""
    return {
        entity: (metadata or {}).get("read", "")
        for entity, metadata in DifferentialAnalysisResult.objects.filter(
            session_id=session_id
        ).values_list("entity_type", "analysis_metadata")
    }


def counts(session_id: uuid.UUID) -> dict[str, tuple[int, int, int]]:
    return {
        c.entity_type: (c.new_count, c.modified_count, c.deleted_count)
        for c in MigrationControl.objects.filter(session_id=session_id)
    }


def assert_exact(pair: Pair) -> None:
    rows, _ = pair.destination()
    assert rows == expected_destination(pair.source)
    assert RecordMap.objects.filter(deleted_at__isnull=True).count() == len(
        pair.source.groups
    ) + len(pair.source.items)


def crash_at(point: str, batch: int):
    seen = {"n": 0}

    def fault(reached: str) -> None:
        if reached == point:
            seen["n"] += 1
            if seen["n"] == batch:
                raise Crash(f"{point} of batch {batch}")

    return fault


def resume_stale(session_id: uuid.UUID) -> MigrationStatus:
    with override_settings(DIFFMIG_LEASE_TIMEOUT=0):
        prepare_resume(session_id=session_id, user="tests")
    return execute_session(session_id=session_id)


def test_a_first_baseline_reads_by_key_range_and_the_next_run_finds_nothing(pair):
    first = run(baseline=True, batch_size=25)

    assert first.overall_status == SessionStatus.COMPLETED
    assert_exact(pair)
    session_id = first.migration_session_id
    assert reads(session_id) == {"grp": KEY_RANGE, "item": KEY_RANGE}
    assert not AnalysisChange.objects.filter(analysis__session_id=session_id).exists()
    assert counts(session_id) == {"grp": (5, 0, 0), "item": (ITEMS, 0, 0)}
    item = MigrationControl.objects.get(session_id=session_id, entity_type="item")
    assert (item.processed_count, item.failed_count, item.skipped_count) == (ITEMS, 0, 0)
    checkpoint = MigrationCheckpoint.objects.get(migration_run_id=item.run_id, unit="upsert")
    assert (checkpoint.batch_position, checkpoint.records_remaining) == (ITEMS, 0)
    assert checkpoint.checkpoint_data["after"] == [["int", ITEMS]]

    # The hashes the baseline recorded are the analysis's: nothing to do next time.
    second = run(batch_size=25)
    assert reads(second.migration_session_id) == {"grp": "", "item": ""}
    assert counts(second.migration_session_id) == {"grp": (0, 0, 0), "item": (0, 0, 0)}

    pair.update_items({3: (2, " changed ", 1)})
    pair.delete_items([4, 5])
    pair.add_items({500: (1, " new ", 9)})
    third = run(batch_size=25)
    assert counts(third.migration_session_id) == {"grp": (0, 0, 0), "item": (1, 1, 2)}
    assert_exact(pair)


def test_a_crash_between_the_two_commits_of_a_batch_replays_it_from_its_last_key(pair):
    session_id = launch(baseline=True, batch_size=25)
    # Batches: grp 1, items 2-6; the third batch of items is written to the destination,
    # not to the control database.
    with pytest.raises(Crash):
        execute_session(session_id=session_id, fault=crash_at("after_destination_commit", 4))
    assert RecordMap.objects.filter(entity_type="item").count() == 50

    resumed = resume_stale(session_id)

    assert resumed.overall_status == SessionStatus.COMPLETED
    assert_exact(pair)
    item = MigrationControl.objects.get(session_id=session_id, entity_type="item")
    assert (item.processed_count, item.failed_count) == (ITEMS, 0)
    assert MigrationExecutionLog.objects.filter(
        session_id=session_id,
        entity_type="item",
        operation_type=OperationType.CHECKPOINT_RESTORE,
        message__contains="continues after row 50",
    ).exists()


def test_rows_the_source_gains_or_loses_during_the_read_are_counted_as_read(pair):
    def change_the_source(reached: str) -> None:
        # After the first batch of items (rows 1-25): three rows ahead go, one row behind
        # goes, one row comes in ahead.
        if reached == "after_control_commit" and RecordMap.objects.count() == 30:
            pair.delete_items([10, 60, 61, 62])
            pair.add_items({200: (1, " late ", 2)})

    session = execute_session(
        session_id=launch(baseline=True, batch_size=25), fault=change_the_source
    )

    assert session.overall_status == SessionStatus.COMPLETED
    item = MigrationControl.objects.get(session_id=session.migration_session_id, entity_type="item")
    assert (item.new_count, item.processed_count, item.failed_count) == (118, 118, 0)
    assert session.total_records_remaining == 0
    assert MigrationExecutionLog.objects.filter(
        session_id=session.migration_session_id,
        message__contains="its read by key range met 118 source rows, where the analysis "
        "counted 120",
    ).exists()
    # The row that went behind the read is the next run's delete.
    after = run(batch_size=25)
    assert counts(after.migration_session_id) == {"grp": (0, 0, 0), "item": (0, 0, 1)}
    assert_exact(pair)


def test_partitions_are_key_ranges_and_a_crash_in_one_resumes_it(pair, settings):
    settings.DIFFMIG_PARTITION_ROWS = 50
    session_id = launch(baseline=True, batch_size=20)
    # Batches: grp 1; items: partition 0 batches 2-4 (20, 20, 10), partition 1 batches 5-7.
    with pytest.raises(Crash):
        execute_session(session_id=session_id, fault=crash_at("after_control_commit", 6))

    resumed = resume_stale(session_id)

    assert resumed.overall_status == SessionStatus.COMPLETED
    assert_exact(pair)
    item = MigrationControl.objects.get(session_id=session_id, entity_type="item")
    parts = MigrationCheckpoint.objects.filter(
        migration_run_id=item.run_id, unit__startswith="upsert:"
    ).order_by("unit")
    data = [p.checkpoint_data for p in parts]
    assert [(d["lo"], d["hi"], d["start"], d["end"]) for d in data] == [
        (1, 50, None, [["int", 51]]),
        (51, 100, [["int", 51]], [["int", 101]]),
        (101, 120, [["int", 101]], None),
    ]
    assert [(p.batch_position, p.records_remaining, p.records_processed) for p in parts] == [
        (50, 0, 50),
        (100, 0, 50),
        (120, 0, 20),
    ]
    assert (item.processed_count, item.failed_count) == (ITEMS, 0)


def test_rq_workers_share_the_key_ranges_in_units_of_a_few_batches(
    pair,
    redis_jobs,  # noqa: F811
    settings,
    tmp_path,
):
    settings.DIFFMIG_PARTITION_ROWS = 50
    settings.DIFFMIG_UNIT_BATCHES = 2
    started = start_run(
        options=RunOptions(baseline=True, batch_size=10), user="tests", background=True
    )
    session_id = started.session.migration_session_id

    with workers(tmp_path) as start:
        pair_of = [start(burst=True) for _ in range(2)]
        for worker in pair_of:
            assert worker.wait(timeout=90) == 0, worker.log()

    assert MigrationStatus.objects.get(migration_session_id=session_id).overall_status == (
        SessionStatus.COMPLETED
    )
    assert_exact(pair)
    assert reads(session_id) == {"grp": KEY_RANGE, "item": KEY_RANGE}
    item = MigrationControl.objects.get(session_id=session_id, entity_type="item")
    parts = MigrationCheckpoint.objects.filter(
        migration_run_id=item.run_id, unit__startswith="upsert:"
    )
    assert sorted(parts.values_list("batch_position", "records_processed")) == [
        (50, 50),
        (100, 50),
        (120, 20),
    ]
    assert (item.processed_count, item.failed_count) == (ITEMS, 0)


def test_what_cannot_be_read_by_key_range_keeps_the_change_set(pair):
    # A dry run shows its change set; so does an entity with an open quarantine entry.
    QuarantinedRecordFactory(entity_type="grp", legacy_key=[9], legacy_key_text="9")
    dry = run(baseline=True, dry_run=True, batch_size=25)
    assert reads(dry.migration_session_id) == {"grp": "", "item": ""}
    assert AnalysisChange.objects.filter(analysis__session_id=dry.migration_session_id).count()

    first = run(baseline=True, batch_size=25)
    assert reads(first.migration_session_id) == {"grp": "", "item": KEY_RANGE}
    assert_exact(pair)

    # A source key that is not the table's primary key of integers.
    with pair.legacy.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE coded (code VARCHAR(10) PRIMARY KEY, n INT)")
        conn.exec_driver_sql("CREATE TABLE keyed (id INT NOT NULL, n INT NOT NULL)")
    source = open_named(load_active_mapping().mapping.source)
    try:
        assert key_range_refusal(source, "coded", ["code"]) == "its key is not of integer columns"
        assert "not the table's primary key" in key_range_refusal(source, "keyed", ["id"])
        assert key_range_refusal(source, "item", ["id"]) is None
        active = load_active_mapping()
        assert not reads_by_key_range(source=source, entity=active.entity("item"), dry_run=False)
    finally:
        source.close()


# --- the read itself, on each dialect ---------------------------------------------------

PAIRS = "CREATE TABLE pairs (a INTEGER NOT NULL, b INTEGER NOT NULL, label VARCHAR(20), "
PAIRS_ROWS = [
    (a, b, None if (a + b) % 4 == 0 else f"r{a}-{b}") for a in range(1, 6) for b in (1, 2, 3)
]


@pytest.fixture(params=["mysql", "postgresql", "sqlite"])
def pairs(request, tmp_path) -> Iterator[Database]:
    if request.param == "mysql":
        url = create_mysql_database("ranges")
    elif request.param == "postgresql":
        url = create_postgres_database("ranges")
    else:
        url = f"sqlite:///{tmp_path / 'ranges.sqlite3'}"
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(PAIRS + "PRIMARY KEY (a, b))")
        conn.execute(
            sa.text("INSERT INTO pairs VALUES (:a, :b, :label)"),
            [{"a": a, "b": b, "label": label} for a, b, label in PAIRS_ROWS],
        )
    engine.dispose()
    database = open_database(ConnectionSpec(name="ranges", url=url), services_policy(tmp_path), {})
    yield database
    database.close()
    if request.param == "mysql":
        drop_mysql_database(url)
    elif request.param == "postgresql":
        drop_postgres_database(url)


def test_a_composite_key_read_in_batches_between_bounds(pairs):
    def read_all(start=None, end=None, limit=4):
        """Every (key, row, hash) from ``start`` to ``end``, a batch of ``limit`` at a time."""
        out, after = [], None
        while True:
            batch = read_key_range(
                pairs, "pairs", ["a", "b"], ["label"], ["label"],
                after=after, start=start, end=end, limit=limit,
            )  # fmt: skip
            if not batch:
                return out
            assert len(batch) <= limit
            rows = map(batch.columns.row, range(len(batch)))
            out += zip(batch.keys, rows, batch.hashes, strict=True)
            after = batch.keys[-1]

    every = read_all()
    assert [(key, row) for key, row, _ in every] == [
        ((a, b), {"label": label}) for a, b, label in PAIRS_ROWS
    ]
    hashes = fetch_key_hashes(pairs, "pairs", ["a", "b"], ["label"], [key for key, _, _ in every])
    assert {key: content_hash for key, _, content_hash in every} == hashes

    middle = read_all(start=(2, 2), end=(4, 1))
    assert [key for key, _, _ in middle] == [(2, 2), (2, 3), (3, 1), (3, 2), (3, 3)]

    count, cuts = key_range_cuts(pairs, "pairs", ["a", "b"], every=4)
    assert (count, cuts) == (15, [(2, 2), (3, 3), (5, 1)])
    assert key_range_refusal(pairs, "pairs", ["a", "b"]) is None
    assert "primary key" in key_range_refusal(pairs, "pairs", ["b", "a"])
