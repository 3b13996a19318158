"""PostgreSQL read through the connectors: introspected kinds, values and hash text that
ignore the server's session defaults, a schema, and a stream that loses its connection."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from migrationsapp.engine.connectors import ConnectionPolicy, Database
from migrationsapp.engine.errors import SourceUnavailableError
from tests.databases import postgres_admin_url
from tests.integration.connectors.support import all_hashes, execute, new_table_name, open_legacy

pytestmark = pytest.mark.services


# --- PostgreSQL -------------------------------------------------------------------------


def test_postgresql_introspection_kinds(postgresql_url: str, postgresql_db: Database) -> None:
    table = new_table_name("pg_types")
    execute(
        postgresql_url,
        f"CREATE TABLE {table} (id serial PRIMARY KEY, ident int GENERATED ALWAYS AS IDENTITY, "
        "ok boolean NOT NULL DEFAULT true, amount numeric(12,3), ratio double precision, "
        "code char(3), label varchar(20) NOT NULL, body text, day date, at timestamp, "
        "at_tz timestamptz, tm time, token uuid, doc json, docb jsonb, blob bytea, span interval, "
        "spot point)",
    )
    info = postgresql_db.table(table)
    assert info is not None
    assert {n: c.kind for n, c in info.columns.items()} == {
        "id": "integer",
        "ident": "integer",
        "ok": "boolean",
        "amount": "numeric",
        "ratio": "float",
        "code": "text",
        "label": "text",
        "body": "text",
        "day": "date",
        "at": "datetime",
        "at_tz": "datetime_tz",
        "tm": "time",
        "token": "uuid",
        "doc": "json",
        "docb": "json",
        "blob": "bytes",
        "span": "other",
        "spot": "other",
    }
    cols = info.columns
    assert (cols["id"].has_default, cols["id"].autoincrement, cols["id"].nullable) == (
        True,
        True,
        False,
    )
    assert (cols["ident"].has_default, cols["ident"].autoincrement) == (True, True)
    assert (cols["ok"].has_default, cols["label"].has_default) == (True, False)
    assert (cols["label"].nullable, cols["body"].nullable) == (False, True)
    assert cols["amount"].scale == 3
    assert (cols["spot"].sql_type, cols["code"].sql_type) == ("POINT", "CHAR(3)")
    assert postgresql_db.server_version().startswith("PostgreSQL 15.")


def test_postgresql_values_and_hash_text_ignore_the_servers_session_defaults(
    postgresql_url: str, policy: ConnectionPolicy
) -> None:
    table = new_table_name("pg_values")
    database = make_url(postgresql_url).database
    execute(
        postgresql_url,
        f"CREATE TABLE {table} (id int PRIMARY KEY, at_tz timestamptz, doc jsonb, blob bytea, "
        "ratio double precision, day date)",
        f"INSERT INTO {table} VALUES (1, '2024-01-31 10:00:00+02', '{{\"a\": 1}}', "
        "'\\x00ff', 0.1, '2024-01-31')",
        # Defaults a DBA may have set; the connector's sessions must not inherit them.
        f"ALTER DATABASE {database} SET timezone = 'America/New_York'",
        f"ALTER DATABASE {database} SET DateStyle = 'SQL, DMY'",
        f"ALTER DATABASE {database} SET extra_float_digits = 0",
    )
    db = open_legacy(postgresql_url, policy)
    try:
        columns = ["at_tz", "doc", "blob", "ratio", "day"]
        rows = [r for b in db.stream_rows(table, columns) for r in b]
        hashes = all_hashes(db, table, ["id"], ["at_tz", "ratio", "day"])
    finally:
        db.close()
        execute(postgresql_url, f"ALTER DATABASE {database} RESET ALL")
    assert rows == [
        {
            "at_tz": dt.datetime(2024, 1, 31, 8, 0, tzinfo=dt.UTC),
            "doc": {"a": 1},
            "blob": b"\x00\xff",
            "ratio": 0.1,
            "day": dt.date(2024, 1, 31),
        }
    ]
    text = b"22:2024-01-31 08:00:00+003:0.110:2024-01-31"
    assert hashes == {(1,): hashlib.md5(text, usedforsecurity=False).hexdigest()}


def test_postgresql_schema_applies_to_unqualified_names(
    postgresql_url: str, policy: ConnectionPolicy
) -> None:
    execute(
        postgresql_url,
        "CREATE SCHEMA IF NOT EXISTS legacy",
        "CREATE TABLE legacy.offices (id int PRIMARY KEY, name text)",
        "INSERT INTO legacy.offices VALUES (1, 'HQ')",
    )
    scoped = open_legacy(postgresql_url, policy, schema="legacy")
    plain = open_legacy(postgresql_url, policy)
    try:
        info = scoped.table("offices")
        assert info is not None and info.schema == "legacy"
        assert scoped.count_rows("offices") == 1
        assert "offices" in scoped.table_names()
        assert plain.table("offices") is None
        assert plain.fetch_rows("legacy.offices", ["id"], [(1,)], ["name"]) == {
            (1,): {"name": "HQ"}
        }
    finally:
        scoped.close()
        plain.close()


def _kill_postgres_connections(database: str) -> None:
    engine = sa.create_engine(make_url(postgres_admin_url()).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            )
    finally:
        engine.dispose()


def test_postgresql_stream_that_loses_its_connection_raises_source_unavailable(
    postgresql_url: str, postgresql_db: Database
) -> None:
    table = new_table_name("pg_big")
    execute(
        postgresql_url,
        f"CREATE TABLE {table} AS SELECT g AS id, md5(g::text) AS v "
        "FROM generate_series(1, 5000) g",
    )
    stream = postgresql_db.stream_key_hashes(table, ["id"], ["v"], batch_size=100)
    assert len(next(stream)) == 100
    _kill_postgres_connections(make_url(postgresql_url).database or "")
    with pytest.raises(SourceUnavailableError, match="'legacy'"):
        for _ in stream:
            pass
    assert postgresql_db.count_rows(table) == 5000
