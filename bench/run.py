"""Benchmark: diffmig against a raw COPY of the same rows, measured in the same run.

    .venv/bin/python bench/run.py [--rows 100000] [--change-share 0.01]

Builds a MariaDB legacy table of N rows (MariaDB's SEQUENCE engine makes them in SQL),
an empty PostgreSQL destination, and a PostgreSQL control database, then times:

* reference: a raw copy — stream every row from MariaDB and COPY it into PostgreSQL,
  no transformation, no bookkeeping (what a full reload costs at best);
* diffmig baseline: the first load, with transforms, validation, record map and events;
* diffmig differential: after changing ``--change-share`` of the rows;
* diffmig no-change run: the analysis alone finds nothing to do;
* with ``--workers 1,3``: the baseline again on that many RQ workers (needs Redis), the
  large entity split into partitions so the workers share it — the speed-up of more workers.

Results (with ratios to the reference) are appended to bench/RESULTS.md. Timings are
reported, never asserted. Needs the services of `make test`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import pymysql  # noqa: E402

MYSQL = dict(host="127.0.0.1", port=3306, user="root", password="")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

MAPPING = """
version: 1
connections:
  legacy: {url: "${DIFFMIG_LEGACY_URL}"}
  target: {url: "${DIFFMIG_TARGET_URL}"}
source: legacy
destination: target
entities:
  - name: item
    source_table: items
    source_key: [id]
    destination_table: item
    destination_key: id
    max_delete_share: 0.5
    fields:
      - {source: id, destination: legacy_id}
      - {source: name, destination: name, transform: trim}
      - {source: amount, destination: amount}
      - {source: created, destination: created_at}
      - {source: flag, destination: flag}
      - {source: note, destination: note}
"""


def pg_execute(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def fresh_pg(name: str) -> str:
    pg_execute(PG_ADMIN, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg_execute(PG_ADMIN, f"CREATE DATABASE {name}")
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def build_source(rows: int) -> str:
    conn = pymysql.connect(**MYSQL, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS diffmig_bench_legacy")
        cur.execute("CREATE DATABASE diffmig_bench_legacy CHARACTER SET utf8mb4")
        cur.execute("USE diffmig_bench_legacy")
        cur.execute(
            "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(80), amount DECIMAL(10,2), "
            "created DATETIME, flag TINYINT(1), note TEXT)"
        )
        cur.execute(
            "INSERT INTO items SELECT seq, CONCAT(' item ', seq, ' '), seq % 10000 / 100, "
            "'2020-01-01' + INTERVAL (seq % 100000) MINUTE, seq % 2, REPEAT('x', seq % 50) "
            f"FROM seq_1_to_{rows}"
        )
    conn.close()
    return "mysql://root@127.0.0.1:3306/diffmig_bench_legacy"


def create_destination(url: str) -> None:
    pg_execute(url, "DROP TABLE IF EXISTS item")
    pg_execute(
        url,
        "CREATE TABLE item (id uuid PRIMARY KEY, legacy_id integer NOT NULL, name text, "
        "amount numeric(10,2), created_at timestamptz, flag boolean, note text)",
    )


def raw_copy(target_url: str) -> float:
    """Stream every row and COPY it: the reference."""
    pg_execute(target_url, "TRUNCATE item")
    started = time.perf_counter()
    source = pymysql.connect(
        **MYSQL, database="diffmig_bench_legacy", cursorclass=pymysql.cursors.SSCursor
    )
    with source.cursor() as cur, psycopg.connect(target_url) as target:
        cur.execute("SELECT id, name, amount, created, flag, note FROM items")
        with (
            target.cursor() as out,
            out.copy(
                "COPY item (id, legacy_id, name, amount, created_at, flag, note) FROM STDIN"
            ) as copy,
        ):
            for row in cur:
                copy.write_row((uuid.uuid4(), row[0], row[1], row[2], row[3], bool(row[4]), row[5]))
        target.commit()
    source.close()
    elapsed = time.perf_counter() - started
    pg_execute(target_url, "TRUNCATE item")
    return elapsed


def change_rows(share: float, rows: int) -> int:
    count = max(1, int(rows * share))
    conn = pymysql.connect(**MYSQL, database="diffmig_bench_legacy", autocommit=True)
    with conn.cursor() as cur:
        third = max(1, count // 3)
        cur.execute(f"UPDATE items SET name = CONCAT(name, '!') WHERE id % {rows // third} = 0")
        cur.execute(f"DELETE FROM items WHERE id % {rows // third} = 1 LIMIT {third}")
        cur.execute(
            f"INSERT INTO items SELECT {rows} + seq, 'new', 1, NOW(), 1, '' FROM seq_1_to_{third}"
        )
    conn.close()
    return count


BENCH_REDIS = "redis://127.0.0.1:6379/12"


def timed_on_workers(options, count: int) -> float:
    """A run executed by ``count`` RQ worker processes, from enqueue to the session's end."""
    import redis

    from migrationsapp.models import MigrationStatus
    from migrationsapp.services.dispatch import submit
    from migrationsapp.services.runs import launch_session

    redis.Redis.from_url(BENCH_REDIS).flushdb()
    session = launch_session(options=options, user="bench")
    env = dict(os.environ)
    started = time.perf_counter()
    submit(session_id=session.migration_session_id)
    workers = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "diffmig", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(count)
    ]
    try:
        while True:
            session.refresh_from_db()
            if session.is_finished:
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
    assert session.overall_status == "completed", MigrationStatus.objects.get(
        pk=session.pk
    ).error_summary
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--change-share", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument(
        "--workers", default="", help="also run the baseline on N RQ workers, e.g. 1,3"
    )
    args = parser.parse_args()
    worker_counts = [int(n) for n in args.workers.split(",") if n.strip()]
    if worker_counts:
        os.environ["REDIS_URL"] = BENCH_REDIS
        # Several partitions, so that the workers can share the one large entity.
        os.environ["DIFFMIG_PARTITION_ROWS"] = str(max(args.rows // 6, 1000))
        os.environ.setdefault("DIFFMIG_UNIT_BATCHES", "4")

    control = fresh_pg("diffmig_bench_control")
    target = fresh_pg("diffmig_bench_target")
    os.environ["DATABASE_URL"] = control
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "diffmig.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from migrationsapp.services.mappings import import_mapping_text
    from migrationsapp.services.runs import RunOptions, run_session

    call_command("migrate", verbosity=0)
    print(f"building {args.rows:,} legacy rows …", file=sys.stderr)
    os.environ["DIFFMIG_LEGACY_URL"] = build_source(args.rows)
    os.environ["DIFFMIG_TARGET_URL"] = target
    create_destination(target)
    import_mapping_text(text=MAPPING)

    results: list[tuple[str, int, float]] = []
    reference = raw_copy(target)
    results.append(("reference: raw COPY of every row", args.rows, reference))

    def timed(label: str, options: RunOptions) -> None:
        started = time.perf_counter()
        session = run_session(options=options)
        elapsed = time.perf_counter() - started
        assert session.overall_status == "completed", session.error_summary
        controls = session.controls.all()
        touched = sum(c.processed_count + c.failed_count + c.skipped_count for c in controls)
        results.append((label, touched, elapsed))

    timed("diffmig baseline", RunOptions(baseline=True, batch_size=args.batch_size))
    changed = change_rows(args.change_share, args.rows)
    timed(f"diffmig differential ({changed:,} changes)", RunOptions(batch_size=args.batch_size))
    timed("diffmig run with no change", RunOptions(batch_size=args.batch_size))
    for count in worker_counts:
        options = RunOptions(baseline=True, batch_size=args.batch_size)
        seconds = timed_on_workers(options, count)
        results.append((f"diffmig baseline on {count} RQ worker(s)", args.rows, seconds))

    lines = [
        f"\n## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — {args.rows:,} rows, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores\n",
        "| run | records written | seconds | records/s | time ÷ raw COPY |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, count, seconds in results:
        rate = count / seconds if seconds else 0
        lines.append(
            f"| {label} | {count:,} | {seconds:.2f} | {rate:,.0f} | {seconds / reference:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    results_file = ROOT / "bench" / "RESULTS.md"
    if not results_file.exists():
        results_file.write_text(
            "# Benchmark results\n\nWritten by `make bench` (bench/run.py); each section is one "
            "run on the machine it names. The reference is measured in the same run.\n"
        )
    with results_file.open("a") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
