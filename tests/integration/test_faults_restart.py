"""PostgreSQL restarted in the middle of a batch: the run ends completed or resumable, and the
destination ends as an uninterrupted run leaves it (0 duplicates, 0 lost, UUIDs unchanged).

The restarted databases live on a PostgreSQL cluster of this module's own (tests.support.
postgres_server), never the shared server. To restart it while a batch is inside its
destination transaction, the test takes a lock on the destination table between two batches,
waits until the next batch waits for that lock (``pg_stat_activity``), and then restarts the
cluster as a crash would (``immediate``): the batch's transaction dies half-way.

* In-process: only the destination is on the cluster (the control database is the test's);
  the run fails resumable and the resume completes.
* On an RQ worker: the control database is on the cluster too (the worker process takes it
  from ``DATABASE_URL``; the session is imported and launched through the CLI against it), so
  the restart cuts the worker's control and destination connections at once; the worker
  lives through it and the watchdog brings the session to completed on its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.test import override_settings

from migrationsapp.engine.ids import destination_uuid
from migrationsapp.models import MigrationControl, RecordEvent
from migrationsapp.models.choices import EntityState, SessionStatus
from migrationsapp.services.runs import RunOptions, execute_session, launch_session, prepare_resume
from tests.databases import scratch_name
from tests.support import workers as worker_support
from tests.support.groups_items import (
    ENTITIES,
    MAPPING,
    Pair,
    expected_destination,
    groups_items_in,
)
from tests.support.postgres_server import PostgresServer, postgres_server
from tests.support.reliability import record
from tests.support.workers import ROOT, jobs_on_redis, wait_until

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


# --------------------------------------------------------------------------- on an RQ worker


class PrivateControl:
    """A control database on the private cluster, driven through the CLI and a worker."""

    def __init__(self, url: str, env: dict[str, str], log_dir: Path) -> None:
        self.url = url
        self.env = env
        self.log_dir = log_dir

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    def query(self, sql: str, *params) -> list[tuple]:
        with psycopg.connect(self.url, connect_timeout=5, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def status(self, session_id: str) -> str | None:
        try:
            rows = self.query(
                "SELECT overall_status FROM migration_status_tracking "
                "WHERE migration_session_id = %s",
                session_id,
            )
        except psycopg.OperationalError:
            return None  # the cluster is restarting
        return rows[0][0] if rows else None

    def record_map(self) -> dict[str, dict[uuid.UUID, str]]:
        out: dict[str, dict[uuid.UUID, str]] = {entity: {} for entity in ENTITIES}
        for entity, key, record_uuid in self.query(
            "SELECT entity_type, legacy_key_text, destination_uuid FROM migration_mappings "
            "WHERE deleted_at IS NULL"
        ):
            out[entity][record_uuid] = key
        return out

    def start_worker(self) -> subprocess.Popen:
        log = (self.log_dir / "worker.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "manage.py", "diffmig", "worker"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _waiting_on_a_lock(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        ).fetchone()[0]


def _stop(worker: subprocess.Popen) -> int:
    """SIGTERM (rq's warm shutdown); SIGKILL the group if it does not end."""
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
    try:
        return worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        for child in worker_support.children(worker.pid):
            os.killpg(child, signal.SIGKILL)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        return -9


@pytest.fixture
def private_control(
    legacy_mysql, cluster, settings, tmp_path
) -> Iterator[tuple[Pair, PrivateControl]]:
    target_url = cluster.create_database(scratch_name("restart_target"))
    control_url = cluster.create_database(scratch_name("restart_control"))
    with jobs_on_redis(settings):
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": control_url,
                "REDIS_URL": worker_support.REDIS_URL,
                "DIFFMIG_LEGACY_URL": legacy_mysql,
                "DIFFMIG_TARGET_URL": target_url,
                "DIFFMIG_LEASE_TIMEOUT": "2",
                "DIFFMIG_UNIT_BATCHES": "2",
                "DIFFMIG_MAX_ATTEMPTS": "20",
                "DIFFMIG_WATCHDOG_INTERVAL": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        control = PrivateControl(control_url, env, tmp_path)
        control.manage("migrate", "--noinput")
        with groups_items_in((legacy_mysql, target_url), import_mapping=False) as pair:
            mapping = tmp_path / "mapping.yaml"
            mapping.write_text(MAPPING.format(item_table="item"), encoding="utf-8")
            control.manage("diffmig", "mappings", "import", str(mapping))
            yield pair, control


def test_control_and_destination_restarted_inside_a_batch_on_a_worker(private_control, cluster):
    pair, control = private_control
    pair.add_groups({g: f"group {g}" for g in range(1, 6)})
    pair.add_items({i: (1 + i % 5, f"item {i}", i) for i in range(1, 301)})
    launched = control.manage("diffmig", "run", "--batch-size", str(BATCH), "--json")
    session_id = json.loads(launched.stdout)["session"]["id"]

    worker = control.start_worker()
    restarted_at: list[int] = []
    try:
        wait_until(
            lambda: control.record_map()["item"],
            timeout=60,
            what="the worker wrote a first batch of items",
        )
        # Hold the next batch inside its destination transaction, then restart everything.
        locker = psycopg.connect(pair.target_url)
        try:
            locker.execute("LOCK TABLE item IN ACCESS EXCLUSIVE MODE")
            wait_until(
                lambda: _waiting_on_a_lock(pair.target_url),
                timeout=60,
                what="a batch waits for the destination lock",
            )
            restarted_at.append(len(control.record_map()["item"]))
            cluster.restart("immediate")
        finally:
            locker.close()  # the restart dropped it
        wait_until(
            lambda: control.status(session_id) in ("completed", "failed", "cancelled"),
            timeout=120,
            what="the session ended",
        )
        status = control.status(session_id)
        log = (control.log_dir / "worker.log").read_text(errors="replace")[-4000:]
        assert worker.poll() is None, log  # the worker lived through the restart
    finally:
        code = _stop(worker)

    assert status == "completed", log
    assert code == 0, log
    assert 0 < restarted_at[0] < 300
    expected = expected_destination(pair.source)
    rows, uuids = pair.destination(control.record_map())
    assert rows == expected
    for entity in ENTITIES:
        assert uuids[entity] == {key: destination_uuid(entity, key) for key in expected[entity]}
    duplicates = control.query(
        "SELECT entity_type, legacy_key_text FROM migration_record_events "
        "WHERE migration_session_id = %s GROUP BY 1, 2 HAVING count(*) > 1",
        session_id,
    )
    assert duplicates == []
    counts = control.query(
        "SELECT entity_type, state, new_count, processed_count, failed_count "
        "FROM migration_control WHERE migration_session_id = %s ORDER BY position",
        session_id,
    )
    assert counts == [("grp", "completed", 5, 5, 0), ("item", "completed", 300, 300, 0)]
    record(
        "faults",
        "control and destination PostgreSQL restarted inside a batch, on an RQ worker",
        tried=1,
        held=1,
        outcome="the worker lives through it and the session completes on its own with the "
        "expected destination, no duplicate, nothing lost",
    )
