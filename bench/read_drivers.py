"""Benchmark: reading a MariaDB table with each MySQL driver diffmig could use.

    .venv/bin/python bench/read_drivers.py [--rows 200000] [--repeat 2]

Builds two tables in a scratch MariaDB database (the bench's ``items`` shape, and a
text-heavy one with multi-byte text), then reads every row of each, streaming, with:

* PyMySQL, unbuffered cursor (SSCursor): the fallback driver, pure Python;
* PyMySQL through SQLAlchemy ``stream_results`` (the engine's reads);
* mysqlclient (MySQLdb, C), unbuffered cursor, and through SQLAlchemy;
* with each driver, the engine's own reads: ``stream_rows`` (values made regular) and
  ``stream_key_hashes`` (key and server-side content hash, what an analysis reads);
* connectorx, into an Arrow table (it cannot bind parameters: whole-table reads only).

Each read runs in a fresh process, so its peak RSS (minus the process's RSS before the
read) is its own. Prints a Markdown table; ``--append`` adds it to bench/RESULTS.md.
Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "diffmig_bench_read_drivers"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}

TABLES = {
    "items": (
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(80), amount DECIMAL(10,2), "
        "created DATETIME, flag TINYINT(1), note TEXT)",
        "INSERT INTO items SELECT seq, CONCAT(' item ', seq, ' '), seq % 10000 / 100, "
        "'2020-01-01' + INTERVAL (seq % 100000) MINUTE, seq % 2, REPEAT('x', seq % 50) "
        "FROM seq_1_to_{rows}",
    ),
    "notes": (
        "CREATE TABLE notes (id INT PRIMARY KEY, title VARCHAR(255), body TEXT, "
        "summary VARCHAR(1000)) CHARACTER SET utf8mb4",
        "INSERT INTO notes SELECT seq, "
        "CONCAT('Überschrift № ', seq, ' — ', REPEAT('é', seq % 40)), "
        "REPEAT(CONCAT('Lorem ipsum dolor sit amet ', seq, ' ✓ naïve café; '), 1 + seq % 24), "
        "REPEAT('日本語テキスト ', 1 + seq % 30) FROM seq_1_to_{rows}",
    ),
}
_MODULES = {
    "pymysql": ("pymysql",),
    "mysqlclient": ("MySQLdb",),
    "connectorx": ("connectorx", "pyarrow"),
}
METHODS = (
    "pymysql",
    "pymysql+sqlalchemy",
    "pymysql+diffmig rows",
    "pymysql+diffmig hashes",
    "mysqlclient",
    "mysqlclient+sqlalchemy",
    "mysqlclient+diffmig rows",
    "mysqlclient+diffmig hashes",
    "connectorx",
)


def build(rows: int) -> None:
    import pymysql

    conn = pymysql.connect(**MYSQL, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cur.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
        cur.execute(f"USE {DATABASE}")
        for create, fill in TABLES.values():
            cur.execute(create)
            cur.execute(fill.format(rows=rows))
    conn.close()


def drop() -> None:
    import pymysql

    conn = pymysql.connect(**MYSQL, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    conn.close()


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def read_once(method: str, table: str, batch: int) -> dict:
    """One read of every row of ``table`` (in this process); rows, seconds, peak RSS growth."""
    sql = f"SELECT * FROM {table}"
    # The driver (and pyarrow) imported before the clock starts and the RSS is taken.
    for module in _MODULES[method.split("+")[0]]:
        importlib.import_module(module)
    if "+diffmig" in method:
        # The engine's own reads: every column's values (a baseline's rows), or each row's
        # key and content hash (an analysis), through the driver DIFFMIG_MYSQL_DRIVER names.
        import tempfile

        sys.path.insert(0, str(ROOT))
        from migrationsapp.engine.connectors import ConnectionPolicy, ConnectionSpec, open_database

        os.environ["DIFFMIG_MYSQL_DRIVER"] = method.split("+")[0]
        policy = ConnectionPolicy(
            allowed_hosts=("127.0.0.1",), sqlite_root=Path(tempfile.gettempdir())
        )
        url = f"mysql://root@127.0.0.1:3306/{DATABASE}"
        db = open_database(ConnectionSpec(name="bench", url=url), policy)
        columns = list(db.require_table(table).columns)
    if method.endswith("+sqlalchemy"):
        import sqlalchemy as sa

        driver = method.split("+")[0].replace("mysqlclient", "mysqldb")
        engine = sa.create_engine(
            f"mysql+{driver}://root@127.0.0.1:3306/{DATABASE}?charset=utf8mb4"
        )
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    before = _rss_mb()
    started = time.perf_counter()
    rows = 0
    if method == "pymysql":
        import pymysql

        conn = pymysql.connect(
            **MYSQL, database=DATABASE, charset="utf8mb4", cursorclass=pymysql.cursors.SSCursor
        )
        with conn.cursor() as cur:
            cur.execute(sql)
            while chunk := cur.fetchmany(batch):
                rows += len(chunk)
        conn.close()
    elif method == "mysqlclient":
        import MySQLdb
        import MySQLdb.cursors

        conn = MySQLdb.connect(
            host="127.0.0.1",
            port=3306,
            user="root",
            database=DATABASE,
            charset="utf8mb4",
            cursorclass=MySQLdb.cursors.SSCursor,
        )
        cur = conn.cursor()
        cur.execute(sql)
        while chunk := cur.fetchmany(batch):
            rows += len(chunk)
        cur.close()
        conn.close()
    elif method.endswith("+diffmig rows"):
        for part in db.stream_rows(table, columns, batch_size=batch):
            rows += len(part)
        db.close()
    elif method.endswith("+diffmig hashes"):
        for part in db.stream_key_hashes(table, ["id"], columns[1:], batch_size=batch):
            rows += len(part)
        db.close()
    elif method.endswith("+sqlalchemy"):
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).exec_driver_sql(sql)
            for part in result.partitions(batch):
                rows += len(part)
    else:
        import connectorx

        arrow = connectorx.read_sql(
            f"mysql://root@127.0.0.1:3306/{DATABASE}", sql, return_type="arrow"
        )
        rows = arrow.num_rows
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "seconds": seconds, "rss_mb": max(peak - before, 0.0)}


def measure(method: str, table: str, batch: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", method, table, str(batch)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=2, help="reads per method; the best is kept")
    parser.add_argument("--append", action="store_true", help="append to bench/RESULTS.md")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, table, batch = args.child
        print(json.dumps(read_once(method, table, int(batch))))
        return

    print(f"building two tables of {args.rows:,} rows …", file=sys.stderr)
    build(args.rows)
    lines = [
        f"\n## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — source read drivers, "
        f"{args.rows:,} rows a table, {platform.machine()}, {os.cpu_count()} cores\n",
        "| table | driver | rows/s | seconds | peak RSS growth (MB) | time ÷ PyMySQL |",
        "|---|---|---:|---:|---:|---:|",
    ]
    try:
        for table in TABLES:
            reference = None
            for method in METHODS:
                runs = [measure(method, table, args.batch) for _ in range(args.repeat)]
                best = min(runs, key=lambda r: r["seconds"])
                assert best["rows"] == args.rows, (method, table, best)
                reference = reference or best["seconds"]
                lines.append(
                    f"| {table} | {method} | {best['rows'] / best['seconds']:,.0f} | "
                    f"{best['seconds']:.2f} | {max(r['rss_mb'] for r in runs):.0f} | "
                    f"{best['seconds'] / reference:.2f} |"
                )
                print(lines[-1], file=sys.stderr)
    finally:
        drop()
    text = "\n".join(lines) + "\n"
    print(text)
    if args.append:
        with (ROOT / "bench" / "RESULTS.md").open("a") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
