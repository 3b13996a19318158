"""Real RQ workers for tests: a Redis database of their own, worker processes, kills.

The tests point diffmig at ``DIFFMIG_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/5``,
a database number nothing else uses; under pytest-xdist, worker ``gwN`` takes the number + N),
flushed before and after each test. Workers are real
``manage.py diffmig worker`` processes, started in a process group of their own so that a
test can SIGKILL a worker together with its work horse, as a crash or an OOM kill would.
They reach the test's own control database (pytest-django's test database) through
``DATABASE_URL``, and the settings a test chose through the environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def redis_url_of_this_process(url: str) -> str:
    """``url`` with its database number moved up by this pytest-xdist worker's number.

    Tests flush their Redis database; two xdist workers (``gw0``, ``gw1``, …) must never
    flush each other's queues, so each takes the next database number.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    offset = int(worker.removeprefix("gw") or 0)
    base, _, db = url.rpartition("/")
    if not db.isdigit():
        base, db = url.rstrip("/"), "0"
    number = int(db) + offset
    if number > 15:
        raise RuntimeError(f"{url}: xdist worker {worker} would need Redis database {number}")
    return f"{base}/{number}"


REDIS_URL = redis_url_of_this_process(
    os.environ.get("DIFFMIG_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
)
# The settings a worker process must share with the test (read from the test's settings).
SHARED_SETTINGS = (
    "DIFFMIG_LEASE_TIMEOUT",
    "DIFFMIG_UNIT_BATCHES",
    "DIFFMIG_JOB_TIMEOUT",
    "DIFFMIG_MAX_ATTEMPTS",
    "DIFFMIG_WATCHDOG_INTERVAL",
    "DIFFMIG_PARTITION_ROWS",
    "DIFFMIG_ANALYSIS_SLICE_ROWS",
    "DIFFMIG_KEY_RANGE_BASELINE",
)


@contextmanager
def jobs_on_redis(django_settings) -> Iterator[redis.Redis]:
    """Point diffmig's executor and queues at the test Redis database, flushed around the test."""
    try:
        client = redis.Redis.from_url(REDIS_URL)
        client.ping()
    except redis.exceptions.ConnectionError as error:
        raise RuntimeError(
            f"Redis is not reachable at {REDIS_URL} ({error}): start it (`redis-server "
            "--daemonize yes`) or point DIFFMIG_TEST_REDIS_URL at one the tests may flush"
        ) from error
    django_settings.REDIS_URL = REDIS_URL
    django_settings.RQ_QUEUES = {
        name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600} for name in settings.DIFFMIG_QUEUES
    }
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def control_database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test database)."""
    db = settings.DATABASES["default"]
    if connection.vendor != "postgresql":
        raise RuntimeError("worker processes need a PostgreSQL control database (DATABASE_URL)")
    credentials = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    host = db["HOST"] or "127.0.0.1"
    return f"postgresql://{credentials}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_environment(application_name: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            # Named, so that a test can tell this worker's control connections apart.
            "DATABASE_URL": f"{control_database_url()}?application_name={application_name}",
            "REDIS_URL": REDIS_URL,
            "PYTHONUNBUFFERED": "1",
            **{name: str(getattr(settings, name)) for name in SHARED_SETTINGS},
        }
    )
    return env


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # "pid (comm) state ppid …": comm may hold spaces, so split after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


class WorkerProcess:
    """One `diffmig worker` process (and its work horses) in a process group of its own."""

    def __init__(self, log_path: Path, *, burst: bool = False) -> None:
        self.log_path = log_path
        self.application_name = f"diffmig-test-{log_path.stem}-{uuid.uuid4().hex[:8]}"
        args = [sys.executable, "manage.py", "diffmig", "worker"] + (["--burst"] if burst else [])
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                cwd=ROOT,
                env=worker_environment(self.application_name),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL the worker and its work horse: no handler runs, nothing is cleaned up.

        rq puts each work horse in a process group of its own (``setpgrp``), so the worker's
        group is frozen first (no new horse is forked), then every horse's group and the
        worker's are killed.
        """
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGSTOP)
            for child in children(self.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child, signal.SIGKILL)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            # A statement the worker sent just before it died still runs to its end on the
            # server (a lease given back, a batch committed): wait until its connections are
            # gone, so that what the test reads next is what the dead worker left.
            wait_until(
                lambda: not self.connections(),
                timeout=30,
                what=f"the control connections of {self.log_path.stem} closed",
            )
        self.process.wait(timeout=10)

    def connections(self) -> int:
        """The control database's connections this worker (or its work horse) opened."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                [self.application_name],
            )
            return cursor.fetchone()[0]

    def stop(self) -> int:
        """SIGTERM: rq's warm shutdown (the current unit ends first); the worker's exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        # A deadline, not a timing: the unit in hand (the daily retention job, a watchdog
        # round) ends first, which takes a while on a machine busy with other tests.
        return self.wait(timeout=45)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            self.kill()
            raise AssertionError(
                f"the worker did not finish in {timeout} s:\n{self.log()}"
            ) from expired

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-5000:]


@contextmanager
def workers(log_dir: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers with the returned function; every one left is killed at the end."""
    started: list[WorkerProcess] = []

    def start(*, burst: bool = False) -> WorkerProcess:
        worker = WorkerProcess(log_dir / f"worker-{len(started)}.log", burst=burst)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


def wait_until(predicate: Callable[[], object], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.05)
