"""The pgloader reference: the whole legacy database loaded into PostgreSQL by pgloader.

pgloader comes from Debian's packages (``apt-get install -y pgloader``, tried when it is
missing and the bench runs as root). Its default casts cannot store MariaDB's zero dates:
the COPY of ``offices`` and ``doctors`` fails, pgloader logs it, and exits 0 with two empty
tables. The load command here casts zero dates to NULL so that every table arrives; the
row counts are checked against the source all the same, and a load that lost rows is
reported as such rather than timed as a reference.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.databases import BenchDatabases

LOAD = """LOAD DATABASE
  FROM {source}
  INTO {target}
WITH include drop, create tables, create indexes, reset sequences,
     workers = 4, concurrency = 1, batch rows = 25000
CAST type date drop not null drop default using zero-dates-to-null,
     type datetime to timestamptz drop default drop not null using zero-dates-to-null
ALTER SCHEMA '{schema}' RENAME TO 'public';
"""


@dataclass
class Availability:
    ok: bool
    version: str = ""
    reason: str = ""


def ensure_pgloader(*, install: bool) -> Availability:
    """pgloader on the PATH, installed from Debian's packages if missing and allowed."""
    if shutil.which("pgloader") is None and install:
        if os.geteuid() != 0:
            return Availability(False, reason="pgloader is not installed and the bench is not root")
        done = subprocess.run(
            ["apt-get", "install", "-y", "pgloader"],
            capture_output=True,
            text=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if done.returncode != 0:
            return Availability(
                False, reason=f"apt-get install pgloader failed: {done.stderr.strip()[-300:]}"
            )
    if shutil.which("pgloader") is None:
        return Availability(False, reason="pgloader is not installed (apt-get install pgloader)")
    out = subprocess.run(["pgloader", "--version"], capture_output=True, text=True).stdout
    match = re.search(r'version "([^"]+)"', out)
    return Availability(True, version=match.group(1) if match else out.strip()[:40])


@dataclass
class PgloaderRun:
    seconds: float
    counts: dict[str, int]
    log_tail: str


def run_pgloader(dbs: BenchDatabases, *, work_dir: Path) -> PgloaderRun:
    """Load the legacy database into a fresh ``pgloader`` database; its time and row counts."""
    dbs.fresh_pg("pgloader")
    command = work_dir / "clinic.load"
    command.write_text(
        LOAD.format(source=dbs.mysql_url(), target=dbs.pg_url("pgloader"), schema=dbs.legacy)
    )
    started = time.perf_counter()
    done = subprocess.run(
        ["pgloader", "--no-ssl-cert-verification", "--root-dir", str(work_dir), str(command)],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"pgloader exited {done.returncode}: {done.stdout[-1500:]}")
    counts = {}
    with dbs.pg_connect("pgloader") as pg:
        for (name,) in pg.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall():
            counts[name] = pg.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
    errors = [line for line in done.stdout.splitlines() if " ERROR " in line]
    return PgloaderRun(seconds, counts, "\n".join(errors[-5:]))
