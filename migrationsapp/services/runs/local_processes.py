"""Both cores without workers: an entity's partitions shared with helper processes.

Without ``REDIS_URL`` a session executes in one process (``execute.py``). An entity split
into partitions (``services.partitions``) need not wait for one core, though: with
``DIFFMIG_LOCAL_PROCESSES`` above 1 the executor starts that many less one helper
processes (``python -m migrationsapp.partition_helper``), and each of them,
like the executor itself, takes the partitions that nobody holds, one at a time, under the
partition's own lease, exactly as RQ workers do. A partition's batches commit with its
checkpoint, so who ran it changes nothing in the outcome.

The executor waits for its helpers before the entity goes on (its ``reference: self``
pass, the next entity). A helper that died leaves its partition's lease with its owner
token, which the executor knows: it gives the lease back and runs what is left itself.
Progress: while helpers run, the executor reports the entity's processed count as the
control database has it (every process's batches), read every second.

PostgreSQL control databases only: SQLite has one writer at a time, and the embedded
default runs in one process.
"""

from __future__ import annotations

import logging
import os
import subprocess  # nosec B404
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from migrationsapp.models import MigrationCheckpoint, MigrationControl
from migrationsapp.services.runs.context import RunContext

logger = logging.getLogger("diffmig.local_processes")

HELPER_MODULE = "migrationsapp.partition_helper"
PROGRESS_INTERVAL = 1.0


@dataclass
class Helpers:
    """The helper processes started for one entity's partitions, with their owner tokens."""

    processes: list[subprocess.Popen] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)


def process_limit() -> int:
    """How many processes of this command may work at once: ``DIFFMIG_LOCAL_PROCESSES`` on
    a PostgreSQL control database, which they share; 1 on any other."""
    return settings.DIFFMIG_LOCAL_PROCESSES if connection.vendor == "postgresql" else 1


def helper_count(pending_partitions: int) -> int:
    """How many helpers to start for this many partitions still to do."""
    if pending_partitions < 2:
        return 0
    return max(0, min(process_limit(), pending_partitions) - 1)


def control_url() -> str:
    """The control database this process uses, as a DATABASE_URL (a test database's name
    included), so that a helper works on the same one."""
    params = connection.get_connection_params()
    user, password = quote(params.get("user") or "", safe=""), params.get("password") or ""
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = params.get("host") or ""
    port = f":{params['port']}" if params.get("port") else ""
    name = quote(params.get("dbname") or connection.settings_dict["NAME"], safe="")
    return f"postgresql://{auth}{host}{port}/{name}"


def spawn(module: str, *args: str) -> subprocess.Popen:
    """``python -m module args…`` on this process's control database and settings."""
    env = {
        **os.environ,
        "DATABASE_URL": control_url(),
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "diffmig.settings"),
    }
    argv = [sys.executable, "-m", module, *args]
    # Our own interpreter and module, with ids we made: no outside input in argv.
    return subprocess.Popen(argv, env=env, cwd=settings.BASE_DIR)  # noqa: S603  # nosec B603


def start(session_id: uuid.UUID, control: MigrationControl, count: int) -> Helpers:
    """Start ``count`` helpers on the partitions of ``control``'s entity run."""
    helpers = Helpers()
    for _ in range(count):
        owner = uuid.uuid4().hex
        helpers.processes.append(spawn(HELPER_MODULE, str(session_id), str(control.pk), owner))
        helpers.owners.append(owner)
    return helpers


def wait(helpers: Helpers) -> list[int]:
    """Wait for every helper to end; give back the partition leases of any that died
    holding one. Returns their exit codes."""
    codes = [process.wait() for process in helpers.processes]
    for process, code in zip(helpers.processes, codes, strict=True):
        if code:
            logger.warning("partition helper %s ended with exit code %s", process.pid, code)
    if helpers.owners:
        MigrationCheckpoint.objects.filter(lease_owner__in=helpers.owners).update(
            lease_owner="", lease_heartbeat=None
        )
    return codes


@contextmanager
def progress_from_control(ctx: RunContext, control: MigrationControl) -> Iterator[None]:
    """Tell the observer how the entity's processed count grows, every process's batches
    included, from a thread with its own connection, while the body runs."""
    observer = ctx.observer
    if observer is None:
        yield
        return
    stop = threading.Event()
    counted = _processed(control)

    def poll() -> None:
        nonlocal counted
        try:
            while not stop.wait(PROGRESS_INTERVAL):
                now = _processed(control)
                if now > counted:
                    observer.advanced(control.entity_type, "upsert", now - counted)
                    counted = now
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=poll, name=f"diffmig-progress-{control.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    # The batches committed since the thread's last read: the bar ends at what was done.
    now = _processed(control)
    if now > counted:
        observer.advanced(control.entity_type, "upsert", now - counted)


def _processed(control: MigrationControl) -> int:
    value = MigrationControl.objects.filter(pk=control.pk).values_list(
        "processed_count", "failed_count", "skipped_count"
    )
    return sum(value.first() or (0,))
