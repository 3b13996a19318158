"""A source read that ends early never becomes deletes.

Two ways a read of the legacy table can end before its last row:

* the MariaDB connection is cut (``KILL QUERY`` / ``KILL CONNECTION`` from another session)
  while the analysis streams: the analysis fails with SourceUnavailableError, the run is
  failed and resumable, nothing is written or deleted, and the resume completes;
* the server ends the result quietly, without an error (``sql_select_limit``, as a legacy
  server's configuration may set it, on the sessions of the source's connections): the
  entity is refused (exit 2, the message gives the counts) before anything is written.

To cut the read at a known place, the item entity reads a view that stalls on one row far
into the table while the test holds a lock (tests.support.stalled_read); the test then kills
the stalled statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.test import override_settings
from sqlalchemy import event
from sqlalchemy.pool import Pool

from migrationsapp.engine.connectors import ConnectionSpec, open_database
from migrationsapp.engine.errors import ReadEndedEarlyError
from migrationsapp.engine.ids import destination_uuid
from migrationsapp.models import (
    DifferentialAnalysisResult,
    MigrationControl,
    MigrationStatus,
    RecordEvent,
    RecordMap,
)
from migrationsapp.models.choices import EntityState, SessionStatus
from migrationsapp.services.runs import RunOptions, execute_session, prepare_resume, run_session
from tests.databases import database_name, services_policy
from tests.integration.conftest import cli
from tests.support.groups_items import (
    Pair,
    control_counts,
    expected_destination,
    groups_items_in,
    import_groups_items_mapping,
)
from tests.support.reliability import record
from tests.support.stalled_read import VIEW, create_stall_view, lock_held, when_read_stalls

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ITEMS = 12_000  # the analysis reads 10,000 keys per batch: the cut comes in its second batch
STALL_ID = 11_000
BATCH = 2_000


def _fill(pair: Pair) -> None:
    pair.add_groups({g: f" group {g} " for g in range(1, 21)})
    pair.add_items({i: (1 + i % 20, f"item {i}", i % 97 or None) for i in range(1, ITEMS + 1)})


def _change_source(pair: Pair) -> dict[str, int]:
    """Five of each: new, modified (one only in its group), deleted; a silent update."""
    pair.add_items({ITEMS + i: (3, f"late {i}", None) for i in range(1, 6)})
    pair.update_items(
        {i: (i % 20 + 1, f"Changed {i}", -i) for i in (2, 4000, 9000, 10_500, 11_900)}
    )
    pair.update_items({7: (None, "item 7", 7)})
    pair.delete_items([5, 6000, 10_999, 11_001, 11_999])
    pair.touch_items([8, 9], "silent")
    return {"new": 5, "modified": 6, "deleted": 5, "unchanged": ITEMS + 5 - 5 - 5 - 6, "retry": 0}


def _assert_destination(pair: Pair, expected_uuids: dict[str, dict[str, uuid.UUID]]) -> None:
    expected = expected_destination(pair.source)
    rows, uuids = pair.destination()
    assert rows == expected
    for entity in ("grp", "item"):
        assert uuids[entity] == {
            key: expected_uuids.get(entity, {}).get(key, destination_uuid(entity, key))
            for key in expected[entity]
        }


def _kill(pair: Pair, kill: str, killed: list[int]) -> Callable[[int], None]:
    def act(process: int) -> None:
        with pair.legacy.connect() as conn:
            conn.exec_driver_sql(f"KILL {kill} {process}")
        killed.append(process)

    return act


@pytest.fixture
def stalled_pair(mysql_to_pg) -> Iterator[tuple[Pair, str]]:
    with groups_items_in(mysql_to_pg, import_mapping=False) as pair:
        lock = create_stall_view(pair, STALL_ID)
        import_groups_items_mapping(item_table=VIEW)
        yield pair, lock


@pytest.mark.parametrize("kill", ["QUERY", "CONNECTION"])
def test_source_connection_cut_mid_analysis_fails_resumably_and_deletes_nothing(stalled_pair, kill):
    pair, lock = stalled_pair
    _fill(pair)
    baseline = run_session(options=RunOptions(batch_size=BATCH))
    assert baseline.overall_status == SessionStatus.COMPLETED
    _assert_destination(pair, {})
    rows_before, uuids_before = pair.destination()
    map_before = set(RecordMap.objects.values_list("entity_type", "legacy_key_text", "deleted_at"))
    expected_counts = _change_source(pair)

    killed: list[int] = []
    with lock_held(pair, lock):
        thread = when_read_stalls(pair, _kill(pair, kill, killed))
        session = run_session(options=RunOptions(batch_size=BATCH))
        thread.join(timeout=60)

    assert killed, "the read was never cut"
    session_id = session.migration_session_id
    assert session.overall_status == SessionStatus.FAILED
    item = MigrationControl.objects.get(session_id=session_id, entity_type="item")
    assert item.state == EntityState.FAILED
    assert "database 'legacy'" in item.message
    assert "reading failed" in item.message
    assert "refused" not in session.error_summary  # a lost connection, not a refusal
    # The read ended early, and nothing came of it: no change set, no row written or
    # deleted, the record map as it was (only the slices read before, for the resume).
    assert not DifferentialAnalysisResult.objects.filter(
        session_id=session_id, entity_type="item", status="complete"
    )
    assert not RecordEvent.objects.filter(session_id=session_id, entity_type="item").exists()
    assert pair.destination() == (rows_before, uuids_before)
    assert (
        set(RecordMap.objects.values_list("entity_type", "legacy_key_text", "deleted_at"))
        == map_before
    )

    prepare_resume(session_id=session_id, user="test")
    resumed = execute_session(session_id=session_id)

    assert resumed.overall_status == SessionStatus.COMPLETED
    item.refresh_from_db()
    assert control_counts(item) == expected_counts
    assert (item.processed_count, item.failed_count, item.skipped_count) == (16, 0, 0)
    _assert_destination(pair, uuids_before)
    gone = RecordMap.objects.filter(entity_type="item", deleted_at__isnull=False)
    assert sorted(gone.values_list("legacy_key_text", flat=True)) == sorted(
        ["5", "6000", "10999", "11001", "11999"]
    )
    record(
        "faults",
        f"MariaDB source connection cut mid-analysis (KILL {kill})",
        tried=1,
        held=1,
        outcome="run failed and resumable, nothing written or deleted; the resume completes "
        "with the expected destination",
    )


# --------------------------------------------------------------------------- quiet early end


def _database_of(dbapi_conn) -> bytes | None:
    """The database a new MySQL connection is on (PyMySQL keeps it; mysqlclient is asked)."""
    if type(dbapi_conn).__module__.startswith("MySQLdb"):
        with dbapi_conn.cursor() as cursor:
            cursor.execute("SELECT DATABASE()")
            return (cursor.fetchone()[0] or "").encode()
    return getattr(dbapi_conn, "db", None)


@contextmanager
def _row_limit(pair: Pair, limit: int) -> Iterator[None]:
    """Every new connection to the scratch legacy database gets ``sql_select_limit``: the
    server then ends each SELECT's result after ``limit`` rows, quietly."""
    database = database_name(pair.legacy_url).encode()

    def limit_rows(dbapi_conn, _record) -> None:
        if _database_of(dbapi_conn) == database:
            with dbapi_conn.cursor() as cursor:
                cursor.execute(f"SET SESSION sql_select_limit = {int(limit)}")

    event.listen(Pool, "connect", limit_rows)
    try:
        yield
    finally:
        event.remove(Pool, "connect", limit_rows)


@pytest.fixture
def pair(mysql_to_pg) -> Iterator[Pair]:
    with groups_items_in(mysql_to_pg) as pair:
        yield pair


def test_every_stream_refuses_to_end_quietly_short_of_its_rows(pair, tmp_path):
    pair.add_groups({1: "one"})
    pair.add_items({i: (1, f"item {i}", i) for i in range(1, 301)})
    db = open_database(
        ConnectionSpec(name="legacy", url=pair.legacy_url), services_policy(tmp_path)
    )
    reads = {
        "keys and hashes": lambda: db.stream_key_hashes("item", ["id"], ["label"], batch_size=64),
        "rows": lambda: db.stream_rows("item", ["id", "label"], batch_size=64),
        "timestamp window": lambda: db.stream_key_hashes_by_timestamp(
            "item", ["id"], ["label"], "amount", since=0, batch_size=64
        ),
    }
    try:
        for name, read in reads.items():  # without the limit: every row
            assert sum(len(batch) for batch in read()) == 300, name
        db.close()
        with _row_limit(pair, 200):
            for name, read in reads.items():
                seen = 0
                with pytest.raises(ReadEndedEarlyError) as refused:
                    for batch in read():
                        seen += len(batch)
                assert seen == 200, name
                assert str(refused.value) == (
                    "reading table 'item' of database 'legacy' ended early: 200 of its 300 rows "
                    "arrived, without an error from the server; the rows not read are not taken "
                    "as deleted"
                ), name
    finally:
        db.close()
    record(
        "faults",
        "source read ended quietly short of its rows (sql_select_limit)",
        tried=len(reads),
        held=len(reads),
        outcome="the read raises ReadEndedEarlyError with the counts instead of ending",
    )


def test_a_read_that_ends_quietly_early_is_refused_and_never_becomes_deletes(pair):
    pair.add_groups({1: "one", 2: "two"})
    pair.add_items({i: (1 + i % 2, f"item {i}", i) for i in range(1, 301)})
    assert run_session(options=RunOptions(batch_size=50)).overall_status == SessionStatus.COMPLETED
    rows_before, uuids_before = pair.destination()
    pair.delete_items([10, 20])
    pair.update_items({30: (2, "thirty", 30)})
    # 298 rows, the server sends 295: without the check, three live items would look deleted
    # (5 of 300: under any delete share a careful operator would set).
    with _row_limit(pair, 295):
        result = cli("run", "--entity", "item")

    assert result.code == 2, result.err
    assert (
        "reading table 'item' of database 'legacy' ended early: 295 of its 298 rows arrived"
        in result.err
    )
    session = MigrationStatus.objects.latest("created_at")
    assert session.overall_status == SessionStatus.FAILED
    assert session.error_summary["refused"] == ["item"]
    item = MigrationControl.objects.get(session=session, entity_type="item")
    assert item.state == EntityState.FAILED
    assert item.message.startswith("refused: reading table 'item'")
    assert not RecordEvent.objects.filter(session=session).exists()
    assert pair.destination() == (rows_before, uuids_before)
    assert not RecordMap.objects.filter(deleted_at__isnull=False).exists()

    # Once the server sends every row again, the resume runs the entity as analysed afresh.
    with override_settings(DIFFMIG_LEASE_TIMEOUT=0):
        prepare_resume(session_id=session.migration_session_id, user="test")
    session = execute_session(session_id=session.migration_session_id)
    assert session.overall_status == SessionStatus.COMPLETED
    item.refresh_from_db()
    assert control_counts(item) == {
        "new": 0, "modified": 1, "deleted": 2, "unchanged": 297, "retry": 0
    }  # fmt: skip
    _assert_destination(pair, uuids_before)
    record(
        "faults",
        "run whose source read ended quietly early (sql_select_limit)",
        tried=1,
        held=1,
        outcome="entity refused (exit 2, counts in the message), nothing written or deleted; "
        "the resume completes",
    )
