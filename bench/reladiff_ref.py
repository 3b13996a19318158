"""The reladiff reference: its find-only time on ``patients`` (MariaDB against PostgreSQL).

reladiff lives in a bench-only virtualenv (``var/bench-venv``, made on first use with
``pip install reladiff[mysql,postgresql]==0.6.0``), never in diffmig's. Its PostgreSQL side is
the raw copy of the legacy tables taken before the churn (same column names and types,
which reladiff needs), so what it finds is exactly the churn of that table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.clinic import TABLE_BY_ENTITY
from bench.databases import BenchDatabases

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "var" / "bench-venv"
PYTHON = VENV / "bin" / "python"
PACKAGE = "reladiff[mysql,postgresql]==0.6.0"


@dataclass
class ReladiffSetup:
    ok: bool
    reason: str = ""


def ensure_reladiff(*, install: bool) -> ReladiffSetup:
    if not PYTHON.exists():
        if not install:
            return ReladiffSetup(False, f"no {VENV} (run the bench with --setup)")
        made = subprocess.run([sys.executable, "-m", "venv", str(VENV)], capture_output=True)
        if made.returncode != 0:
            return ReladiffSetup(False, f"python -m venv {VENV} failed")
    check = subprocess.run([str(PYTHON), "-c", "import reladiff, mysql.connector, psycopg2"])
    if check.returncode != 0:
        if not install:
            return ReladiffSetup(False, f"reladiff is not installed in {VENV}")
        done = subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "-q", PACKAGE], capture_output=True, text=True
        )
        if done.returncode != 0:
            return ReladiffSetup(False, f"pip install {PACKAGE} failed: {done.stderr[-300:]}")
    return ReladiffSetup(True)


@dataclass
class ReladiffRun:
    seconds: float
    keys: int
    versions: str


def reladiff_find(dbs: BenchDatabases, *, entity: str = "patient") -> ReladiffRun:
    """Find every difference of one table between the legacy database and its raw copy."""
    table = TABLE_BY_ENTITY[entity]
    (key,) = table.key
    columns = [c for c in table.hashed if c != key]
    started = time.perf_counter()
    done = subprocess.run(
        [
            str(PYTHON),
            str(ROOT / "bench" / "reladiff_find.py"),
            dbs.mysql_url(),
            dbs.pg_url("raw"),
            table.name,
            key,
            *columns,
        ],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"reladiff failed: {done.stderr[-1500:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # The whole process (its start included), as a user of reladiff waits for it.
    return ReladiffRun(
        seconds=wall,
        keys=result["keys"],
        versions=f"reladiff {result['reladiff']}, mysql-connector {result['mysql_connector']}",
    )
