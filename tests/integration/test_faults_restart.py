"""PostgreSQL restarted in the middle of a batch: the run ends completed or resumable, and the
destination ends as an uninterrupted run leaves it (0 duplicates, 0 lost, UUIDs unchanged).

The destination lives on a PostgreSQL cluster of this module's own (tests.support.
postgres_server), never the shared server. To restart it while a batch is inside its
destination transaction, the test takes a lock on the destination table between two batches
(through the runner's fault hook), waits until the next batch's upsert is waiting for that
lock (``pg_stat_activity``), and then restarts the cluster as a crash would (``immediate``):
the batch's transaction dies half-way.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest
from django.test import override_settings

from migrationsapp.engine.ids import destination_uuid
from migrationsapp.models import MigrationControl, RecordEvent
from migrationsapp.models.choices import EntityState, SessionStatus
from migrationsapp.services.runs import RunOptions, execute_session, launch_session, prepare_resume
from tests.databases import scratch_name
from tests.support.groups_items import Pair, expected_destination, groups_items_in
from tests.support.postgres_server import PostgresServer, postgres_server
from tests.support.reliability import record
from tests.support.workers import wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

BATCH = 25


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def pair(legacy_mysql, cluster, monkeypatch) -> Iterator[Pair]:
    target_url = cluster.create_database(scratch_name("restart"))
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", legacy_mysql)
    monkeypatch.setenv("DIFFMIG_TARGET_URL", target_url)
    with groups_items_in((legacy_mysql, target_url)) as pair:
        pair.add_groups({g: f"group {g}" for g in range(1, 6)})
        pair.add_items({i: (1 + i % 5, f"item {i}", i) for i in range(1, 301)})
        yield pair


def _restart_once_a_batch_waits(cluster: PostgresServer, target_url: str) -> tuple:
    """A fault hook that, at the second item batch's end, locks ``item`` and lets a thread
    restart the cluster once the next batch's upsert waits for the lock."""
    restarted: list[int] = []
    threads: list[threading.Thread] = []
    seen = Counter()

    def waiting_backend() -> int | None:
        with psycopg.connect(target_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            ).fetchone()
        return row[0] if row else None

    def restart(locker: psycopg.Connection) -> None:
        found: list[int | None] = []
        try:
            wait_until(
                lambda: found.append(waiting_backend()) or found[-1],
                timeout=60,
                what="the next batch waits for the lock",
            )
            cluster.restart("immediate")
            restarted.append(found[-1])
        finally:
            locker.close()  # never leave the run waiting, whatever happened

    def fault(point: str) -> None:
        if point != "after_control_commit":
            return
        seen[point] += 1
        if seen[point] == 3:  # the groups' batch, then two of the items'
            locker = psycopg.connect(target_url)
            locker.execute("LOCK TABLE item IN ACCESS EXCLUSIVE MODE")
            thread = threading.Thread(target=restart, args=(locker,), daemon=True)
            thread.start()
            threads.append(thread)

    return fault, restarted, threads


def _assert_migrated(pair: Pair, session_id: uuid.UUID) -> None:
    expected = expected_destination(pair.source)
    rows, uuids = pair.destination()
    assert rows == expected
    for entity in ("grp", "item"):
        assert uuids[entity] == {key: destination_uuid(entity, key) for key in expected[entity]}
    events = Counter(
        RecordEvent.objects.filter(session_id=session_id).values_list(
            "entity_type", "legacy_key_text"
        )
    )
    assert [key for key, n in events.items() if n > 1] == []
    for control in MigrationControl.objects.filter(session_id=session_id):
        changes = control.new_count + control.modified_count + control.deleted_count
        assert (control.state, control.processed_count, control.failed_count) == (
            EntityState.COMPLETED,
            changes,
            0,
        )
        assert sum(n for (e, _), n in events.items() if e == control.entity_type) == changes


def test_destination_restarted_inside_a_batch_resumes_to_the_expected_destination(pair, cluster):
    fault, restarted, threads = _restart_once_a_batch_waits(cluster, pair.target_url)
    session_id = launch_session(options=RunOptions(batch_size=BATCH)).migration_session_id

    session = execute_session(session_id=session_id, fault=fault)
    threads[0].join(timeout=60)

    assert restarted, "the cluster was never restarted"
    assert session.overall_status == SessionStatus.FAILED
    item = MigrationControl.objects.get(session_id=session_id, entity_type="item")
    assert item.state == EntityState.FAILED
    assert item.processed_count == 2 * BATCH  # the two batches before; the third died
    with pair.target.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM item").scalar_one() == 2 * BATCH

    with override_settings(DIFFMIG_LEASE_TIMEOUT=0):
        prepare_resume(session_id=session_id, user="test")
    session = execute_session(session_id=session_id)

    assert session.overall_status == SessionStatus.COMPLETED
    _assert_migrated(pair, session_id)
    record(
        "faults",
        "destination PostgreSQL restarted inside a batch's transaction",
        tried=1,
        held=1,
        outcome="the run fails resumable; the resume completes with the expected destination, "
        "no duplicate, nothing lost, UUIDs unchanged",
    )
