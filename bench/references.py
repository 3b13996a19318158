"""The in-process references: a raw COPY, a raw read of both sides, and the hash-scan floor.

* raw COPY — stream every row of the four legacy tables (PyMySQL, the driver diffmig uses)
  and COPY it into PostgreSQL tables of the same names and columns: no transform, no
  bookkeeping. The copy it leaves is also reladiff's PostgreSQL side (the pre-churn state).
* raw read — fetch every row of both sides (legacy tables and destination tables) into Python
  values, compare nothing: what a verify cannot go below.
* the floor — per table, the key and an MD5 of the mapped columns computed by MariaDB (the
  same per-value text diffmig hashes), streamed from one snapshot, binary-COPYed into a
  PostgreSQL temporary table and FULL JOINed with a record map of the same size: what any
  hash-based change detection of these tables costs at least.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from bench.clinic import TABLES, Table
from bench.databases import BenchDatabases

FETCH_ROWS = 10_000

_RAW_TYPES = {
    "int": "integer",
    "decimal": "numeric",
    "date": "date",
    "datetime": "timestamp",
}


def _source_columns(cur, table: str) -> list[tuple[str, str, str]]:
    cur.execute(
        "SELECT column_name, data_type, column_type FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    return [(r[0], r[1].lower(), r[2].lower()) for r in cur.fetchall()]


def _raw_select(table: str, columns: Sequence[tuple[str, str, str]]) -> str:
    parts = []
    for name, data_type, _ in columns:
        # PostgreSQL has no zero date: the one conversion a raw copy needs.
        parts.append(f"NULLIF(`{name}`, '0000-00-00')" if data_type == "date" else f"`{name}`")
    return f"SELECT {', '.join(parts)} FROM `{table}`"


def create_raw_tables(dbs: BenchDatabases) -> None:
    """Empty tables in the ``raw`` database, with the legacy tables' names, columns and keys."""
    dbs.fresh_pg("raw")
    src = dbs.mysql_connect()
    with src.cursor() as cur, dbs.pg_connect("raw", autocommit=True) as pg:
        for table in TABLES:
            columns = _source_columns(cur, table.name)
            defs = []
            for name, data_type, column_type in columns:
                pg_type = _RAW_TYPES.get(data_type, "text")
                if data_type == "decimal":
                    pg_type = column_type.replace("decimal", "numeric")
                defs.append(f'"{name}" {pg_type}')
            keys = ", ".join(f'"{k}"' for k in table.key)
            pg.execute(f'CREATE TABLE "{table.name}" ({", ".join(defs)}, PRIMARY KEY ({keys}))')
    src.close()


def raw_copy(dbs: BenchDatabases) -> tuple[float, int]:
    """Copy every legacy row into the ``raw`` tables (emptied first, untimed)."""
    with dbs.pg_connect("raw", autocommit=True) as pg:
        pg.execute("TRUNCATE " + ", ".join(f'"{t.name}"' for t in TABLES))
    rows = 0
    started = time.perf_counter()
    src = dbs.mysql_connect(streaming=True)
    with dbs.pg_connect("raw") as pg:
        for table in TABLES:
            with src.cursor() as meta:
                columns = _source_columns(meta, table.name)
            names = ", ".join(f'"{c[0]}"' for c in columns)
            with src.cursor() as cur, pg.cursor() as out:
                cur.execute(_raw_select(table.name, columns))
                with out.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
                    while batch := cur.fetchmany(FETCH_ROWS):
                        for row in batch:
                            copy.write_row(row)
                        rows += len(batch)
        pg.commit()
    src.close()
    return time.perf_counter() - started, rows


def raw_read(dbs: BenchDatabases) -> tuple[float, int]:
    """Fetch every row of the legacy tables and of the destination tables; compare nothing."""
    rows = 0
    started = time.perf_counter()
    src = dbs.mysql_connect(streaming=True)
    for table in TABLES:
        with src.cursor() as cur:
            cur.execute(f"SELECT * FROM `{table.name}`")
            while batch := cur.fetchmany(FETCH_ROWS):
                rows += len(batch)
    src.close()
    with dbs.pg_connect("target") as pg:
        for table in TABLES:
            with pg.cursor(name=f"read_{table.destination}") as cur:
                cur.itersize = FETCH_ROWS
                cur.execute(f'SELECT * FROM "{table.destination}"')
                while batch := cur.fetchmany(FETCH_ROWS):
                    rows += len(batch)
    return time.perf_counter() - started, rows


# -- the floor ------------------------------------------------------------------------------


def _hash_sql(table: Table) -> str:
    # The text diffmig's MariaDB hash is made of: "<length>:<value>" per column, "N" for NULL.
    pieces = []
    for column in table.hashed:
        text = f"CAST(`{column}` AS CHAR CHARACTER SET utf8mb4)"
        pieces.append(f"COALESCE(CONCAT(CHAR_LENGTH({text}), ':', {text}), 'N')")
    return f"UNHEX(MD5(CONCAT({', '.join(pieces)})))"


def _key_defs(table: Table) -> str:
    return ", ".join(f'"{k}" integer' for k in table.key)


def prepare_floor(dbs: BenchDatabases) -> None:
    """The floor's record maps (key, hash), one per table, filled from the current source."""
    dbs.fresh_pg("floor")
    with dbs.pg_connect("floor", autocommit=True) as pg:
        for table in TABLES:
            keys = ", ".join(f'"{k}"' for k in table.key)
            pg.execute(
                f'CREATE TABLE "map_{table.name}" ({_key_defs(table)}, hash bytea NOT NULL, '
                f"PRIMARY KEY ({keys}))"
            )
    src = dbs.mysql_connect(streaming=True)
    with dbs.pg_connect("floor") as pg:
        for table in TABLES:
            _stream_hashes(src, pg, table, f'"map_{table.name}"')
        pg.commit()
    src.close()


def _stream_hashes(src, pg, table: Table, into: str) -> int:
    keys = ", ".join(f"`{k}`" for k in table.key)
    rows = 0
    with src.cursor() as cur, pg.cursor() as out:
        cur.execute(f"SELECT {keys}, {_hash_sql(table)} FROM `{table.name}`")
        names = ", ".join(f'"{k}"' for k in table.key)
        with out.copy(f"COPY {into} ({names}, hash) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([*(["int4"] * len(table.key)), "bytea"])
            while batch := cur.fetchmany(FETCH_ROWS):
                for row in batch:
                    copy.write_row(row)
                rows += len(batch)
    return rows


def hash_scan_floor(dbs: BenchDatabases) -> tuple[float, dict[str, dict[str, int]]]:
    """Find the new / modified / deleted keys of every table against the floor's record maps;
    returns the seconds and the counts per entity (the maps are left as they are)."""
    counts: dict[str, dict[str, int]] = {}
    started = time.perf_counter()
    src = dbs.mysql_connect(streaming=True)
    with src.cursor() as cur:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
    with dbs.pg_connect("floor") as pg:
        for table in TABLES:
            scan = f"scan_{table.name}"
            pg.execute(f'CREATE TEMPORARY TABLE "{scan}" ({_key_defs(table)}, hash bytea)')
            _stream_hashes(src, pg, table, f'"{scan}"')
            keys = ", ".join(f'"{k}"' for k in table.key)
            first = table.key[0]
            row = pg.execute(
                f'SELECT count(*) FILTER (WHERE m."{first}" IS NULL), '
                f'count(*) FILTER (WHERE s."{first}" IS NULL), '
                f"count(*) FILTER (WHERE s.hash <> m.hash) "
                f'FROM "{scan}" s FULL JOIN "map_{table.name}" m USING ({keys})'
            ).fetchone()
            counts[table.entity] = {"new": row[0], "deleted": row[1], "modified": row[2]}
            pg.execute(f'DROP TABLE "{scan}"')
        pg.rollback()
    src.commit()
    src.close()
    return time.perf_counter() - started, counts
