"""An outage during a run: Redis restarted (every queued job lost) and the control database
cutting every worker's connection (``pg_terminate_backend``) at the same moment.

Redis is a server of the test's own (tests.support.redis_server), killed with SIGKILL and
started again empty, so the queues are really gone. The workers must live through it (no
supervisor starts them again) and the watchdog must bring the session to its end from
PostgreSQL alone, with the destination, record map, quarantine and UUIDs of an uninterrupted
run (tests.integration.test_jobs.assert_migrated).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator

import pytest
from django.db import connection

from migrationsapp.models import MigrationExecutionLog
from migrationsapp.models.choices import OperationType, SessionStatus
from tests.integration.test_jobs import assert_migrated, batches, finished, launch, status
from tests.integration.test_jobs_chaos import appointment_partitions
from tests.support import workers as worker_support
from tests.support.clinic_run import Clinic, clinic_in
from tests.support.redis_server import RedisServer, redis_server
from tests.support.workers import jobs_on_redis, wait_until, workers

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SEED = 20261129
SCALE = 12  # 5,340 legacy rows
PARTITION_ROWS = 1_000  # the appointments (3,600) in 4 partitions
BATCH_SIZE = 40
WORKERS = 2
OUTAGE_S = 1.5  # how long Redis stays down, each time


@pytest.fixture
def clinic(mysql_to_pg) -> Iterator[Clinic]:
    with clinic_in(mysql_to_pg, SEED, SCALE) as clinic:
        yield clinic


@pytest.fixture
def own_redis(settings, monkeypatch) -> Iterator[RedisServer]:
    """Workers on a Redis server of this test's own; short leases, a watchdog every second."""
    settings.DIFFMIG_LEASE_TIMEOUT = 2
    settings.DIFFMIG_UNIT_BATCHES = 2
    settings.DIFFMIG_MAX_ATTEMPTS = 20
    settings.DIFFMIG_WATCHDOG_INTERVAL = 1
    settings.DIFFMIG_PARTITION_ROWS = PARTITION_ROWS
    with redis_server() as server:
        monkeypatch.setattr(worker_support, "REDIS_URL", server.url)
        with jobs_on_redis(settings):
            yield server


def terminate_control_connections(timeout: float = 5) -> int:
    """``pg_terminate_backend`` on every other connection to the control database.

    Retried until it hits at least one: a worker between two units may hold none for a moment.
    """
    deadline = time.monotonic() + timeout
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            killed = cursor.fetchone()[0]
        if killed or time.monotonic() > deadline:
            return killed
        time.sleep(0.01)


def restores(session_id: uuid.UUID) -> list[str]:
    return list(
        MigrationExecutionLog.objects.filter(
            session_id=session_id, operation_type=OperationType.CHECKPOINT_RESTORE
        ).values_list("message", flat=True)
    )


def partition_leased(session_id: uuid.UUID) -> bool:
    return appointment_partitions(session_id).exclude(lease_owner="").exists()


def test_redis_restarted_and_control_connections_killed_mid_run(clinic, own_redis, tmp_path):
    """Two outages: one early (whole entities running), one while partitions hold leases."""
    rng = random.Random(SEED)
    session_id = launch(batch_size=BATCH_SIZE)
    outages: list[tuple[int, int]] = []  # (batches committed, connections cut) at each

    def outage() -> None:
        time.sleep(rng.uniform(0.0, 0.5))
        # Connections first: with Redis already down, workers that finished their unit wait
        # on the queue holding no control connection, and there may be none left to cut.
        killed = terminate_control_connections()
        own_redis.kill()
        time.sleep(OUTAGE_S)
        own_redis.start()  # empty: every queued job is gone
        outages.append((batches(session_id), killed))

    with workers(tmp_path) as start:
        running = [start() for _ in range(WORKERS)]
        wait_until(lambda: batches(session_id) >= 4, timeout=60, what="four batches committed")
        outage()
        wait_until(
            lambda: partition_leased(session_id) or finished(session_id),
            timeout=60,
            what="an appointment partition leased",
        )
        outage()
        wait_until(lambda: finished(session_id), timeout=120, what="the session ended")
        logs = "\n".join(worker.log() for worker in running)
        # The workers lived through the outages: each stops now, on request, with exit code 0.
        assert [worker.stop() for worker in running] == [0] * WORKERS, logs

    assert all(killed >= 1 for _, killed in outages), outages
    assert status(session_id) == SessionStatus.COMPLETED, logs
    assert batches(session_id) > outages[-1][0]  # the run went on after the last outage
    assert_migrated(clinic, session_id)
    assert appointment_partitions(session_id).count() >= 3
    # The log says how the run came back: units enqueued again, or leases taken over.
    assert restores(session_id), logs
    print(f"\noutages (batches, connections cut): {outages}")
    print("\n".join(restores(session_id)))
