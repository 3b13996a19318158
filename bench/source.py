"""Building the legacy clinic in MariaDB, and reading its row counts."""

from __future__ import annotations

from bench.clinic import SOURCE_DDL, TABLES, Sizes, insert_statements
from bench.databases import BenchDatabases


def build_source(dbs: BenchDatabases, *, seed: int, sizes: Sizes) -> None:
    """Create the legacy database and fill its four tables (deterministic from ``seed``)."""
    dbs.fresh_mysql()
    conn = dbs.mysql_connect()
    with conn.cursor() as cur:
        # A legacy server: zero dates allowed, no strict mode.
        cur.execute("SET SESSION sql_mode = ''")
        for ddl in SOURCE_DDL:
            cur.execute(ddl)
        for statement in insert_statements(seed, sizes):
            cur.execute(statement)
    conn.close()


def source_counts(dbs: BenchDatabases) -> dict[str, int]:
    conn = dbs.mysql_connect()
    counts = {}
    with conn.cursor() as cur:
        for table in TABLES:
            cur.execute(f"SELECT COUNT(*) FROM `{table.name}`")
            counts[table.name] = int(cur.fetchone()[0])
    conn.close()
    return counts
