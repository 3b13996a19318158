"""The benchmark at a tiny scale, so that it cannot rot: every step runs, the change set is exact.

bench/run.py runs as `make bench` does (its own scratch databases, the CLI in child
processes), at SCALE 600 (6 offices, so that the cascade from one deleted office stays
under the mapping's delete guard) with one repetition and a results file in a temporary
folder. The references whose tools are missing (pgloader, reladiff's venv) are skipped by the
bench, which says why; raw COPY, the floor, the baseline, the churn, the differential run, the run
with no change and verify always run. What is asserted is exactness (the differential run's
change set equals the churn's ground truth, verify finds no mismatch), never a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.databases import mysql_admin_url, postgres_admin_url, scratch_name
from tests.support.reliability import record

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]
ALWAYS = (
    "reference: raw COPY of every row",
    "reference: hash-scan floor, no change",
    "diffmig baseline (`run --baseline`)",
    "diffmig run with no change",
    "diffmig verify",
    "reference: raw read of both sides",
    "reference: hash-scan floor at churn",
)


def _bench_env() -> dict[str, str]:
    from sqlalchemy.engine import make_url

    mysql, pg = make_url(mysql_admin_url()), make_url(postgres_admin_url())
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        BENCH_MYSQL_HOST=mysql.host or "127.0.0.1",
        BENCH_MYSQL_PORT=str(mysql.port or 3306),
        BENCH_MYSQL_USER=mysql.username or "root",
        BENCH_MYSQL_PASSWORD=mysql.password or "",
        BENCH_PG_HOST=pg.host or "127.0.0.1",
        BENCH_PG_PORT=str(pg.port or 5432),
        BENCH_PG_USER=pg.username or "postgres",
    )
    return env


def test_bench_smoke_run_finds_exactly_the_churn(tmp_path):
    results = tmp_path / "RESULTS.md"
    summary_path = tmp_path / "summary.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--scale",
            "600",
            "--repeat",
            "1",
            "--results",
            str(results),
            "--json-out",
            str(summary_path),
            "--summary-dir",
            str(tmp_path),
            "--prefix",
            scratch_name("bench"),
        ],
        cwd=ROOT,
        env=_bench_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(summary_path.read_text())
    for reason in summary["skipped"]:
        print(f"bench reference skipped: {reason}")

    score = summary["change_set"]
    assert summary["exact"] is True
    assert summary["verify_ok"] is True
    assert (score["recall"], score["precision"]) == (1.0, 1.0)
    assert score["found"] == score["truth"] == summary["changes"]
    assert score["other_kinds"] == 0
    # One silent update per table is picked; a cascaded delete may take some of them.
    assert score["silent_found"] == score["silent"] >= 1
    assert score["deleted_found"] == score["deleted"] >= 4
    assert summary["rows"] == 6 + 120 + 600 + 1200
    for label in ALWAYS:
        assert label in summary["seconds"], label
    text = results.read_text()
    assert "SCALE 600 (1,926 rows)" in text
    assert "| recall / precision of the change set" in text
    assert "Per-stage time of the first repetition" in text
    record(
        "dirty data",
        "bench clinic churn (updates, silent updates, inserts, cascaded hard deletes) over zero "
        "dates, Latin-1 and 4-byte text, NULLs",
        tried=score["truth"],
        held=score["found"],
        outcome="the differential run's change set equals the ground truth key by key",
    )
