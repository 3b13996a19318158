"""MariaDB's legacy oddities read through the connectors: folded types, composite and text
keys, zero and impossible dates, collations, and a stream that loses its connection.

The legacy tables are written with sql_mode='ALLOW_INVALID_DATES' so that zero and
impossible dates can be stored, as old applications did."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from migrationsapp.engine.connectors import Database
from migrationsapp.engine.errors import SourceUnavailableError
from tests.databases import mysql_admin_url
from tests.integration.connectors.support import all_hashes, execute, new_table_name

pytestmark = pytest.mark.services


# --- MariaDB: legacy oddities ---------------------------------------------------------

LEGACY_DDL = """
CREATE TABLE legacy_patients (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(50) NOT NULL,
  nickname VARCHAR(50) NULL,
  active TINYINT(1) NOT NULL DEFAULT 1,
  is_vip BOOLEAN NULL,
  flag BIT(1) NULL,
  visits SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  balance DECIMAL(10,2) NOT NULL DEFAULT 0.00,
  score DOUBLE NULL,
  weight FLOAT NULL,
  born DATE NULL,
  updated_at DATETIME NULL,
  seen_at TIMESTAMP NULL DEFAULT NULL,
  opens TIME NULL,
  note TEXT NULL,
  kind ENUM('new', 'old') NULL,
  photo BLOB NULL,
  prefs JSON NULL,
  token UUID NULL,
  location POINT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""

LEGACY_ROWS = [
    "INSERT INTO legacy_patients (id, name, nickname, active, is_vip, flag, visits, balance, "
    "score, weight, born, updated_at, seen_at, opens, note, kind, photo, prefs, token, location) "
    "VALUES (1, 'Ann', NULL, 1, 0, b'1', 3, 12.50, 0.1, 1.2345678, '1980-02-29', "
    "'2024-01-31 10:00:00', '2024-01-31 10:00:00', '08:30:00', 'ok 😀', 'new', x'00ff10', "
    "'{\"a\": 1}', '6ccd780c-baba-1026-9564-5b8c656024db', POINT(1, 2))",
    "INSERT INTO legacy_patients (id, name, born, updated_at, seen_at, opens, note) VALUES "
    "(2, 'Zero', '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '838:59:59', '')",
    "INSERT INTO legacy_patients (id, name, born, updated_at) VALUES "
    "(3, 'Impossible', '2021-02-30', '2021-02-30 25:00:00')",
    "INSERT INTO legacy_patients (id, name, born, updated_at) VALUES "
    "(4, 'Impossible2', '2021-02-30', '2021-04-31 10:00:00')",
]


@pytest.fixture(scope="module")
def legacy(mysql_url: str, mysql_db: Database) -> Database:
    execute(mysql_url, LEGACY_DDL, *LEGACY_ROWS)
    execute(
        mysql_url,
        "CREATE TABLE codes (code VARCHAR(20) NOT NULL PRIMARY KEY, label VARCHAR(20)) "
        "DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_general_ci",
        "INSERT INTO codes VALUES ('abc', 'lower'), ('a', 'short'), ('é', 'accent')",
        "CREATE TABLE visits (office_code VARCHAR(10) NOT NULL, visit_no INT NOT NULL, "
        "note VARCHAR(50), PRIMARY KEY (office_code, visit_no)) DEFAULT CHARSET=utf8mb4",
        "INSERT INTO visits VALUES ('NYC', 1, 'x'), ('nyc', 2, 'y')",
    )
    return mysql_db


def test_mysql_introspection_folds_legacy_types_into_kinds(legacy: Database) -> None:
    info = legacy.table("legacy_patients")
    assert info is not None
    kinds = {name: col.kind for name, col in info.columns.items()}
    assert kinds == {
        "id": "integer",
        "name": "text",
        "nickname": "text",
        "active": "boolean",
        "is_vip": "boolean",
        "flag": "boolean",
        "visits": "integer",
        "balance": "numeric",
        "score": "float",
        "weight": "float",
        "born": "date",
        "updated_at": "datetime",
        "seen_at": "datetime_tz",
        "opens": "time",
        "note": "text",
        "kind": "text",
        "photo": "bytes",
        "prefs": "json",
        "token": "uuid",
        "location": "other",
    }
    assert list(info.columns) == list(kinds)  # table order
    assert info.primary_key == ("id",)
    id_col, name, active, balance = (info.columns[n] for n in ("id", "name", "active", "balance"))
    assert (id_col.primary_key, id_col.autoincrement, id_col.has_default) == (True, True, True)
    assert (name.nullable, name.has_default) == (False, False)
    assert (active.nullable, active.has_default) == (False, True)
    assert (balance.scale, balance.has_default, balance.sql_type) == (2, True, "DECIMAL(10, 2)")
    assert info.columns["nickname"].nullable is True
    assert info.columns["location"].sql_type == "POINT"  # a type SQLAlchemy does not know
    assert info.column("missing") is None


def test_mysql_composite_and_text_primary_keys(legacy: Database) -> None:
    visits = legacy.table("visits")
    codes = legacy.table("codes")
    assert visits is not None and codes is not None
    assert visits.primary_key == ("office_code", "visit_no")
    assert codes.primary_key == ("code",)
    assert codes.columns["code"].kind == "text"
    assert codes.columns["code"].nullable is False
    assert {"codes", "legacy_patients", "visits"} <= set(legacy.table_names())


def test_mysql_zero_dates_impossible_dates_and_emoji_are_read_raw(legacy: Database) -> None:
    rows = {
        r["id"]: r
        for batch in legacy.stream_rows(
            "legacy_patients", ["id", "born", "updated_at", "seen_at", "opens", "note"]
        )
        for r in batch
    }
    assert rows[2]["born"] == "0000-00-00"
    assert rows[2]["updated_at"] == "0000-00-00 00:00:00"
    assert rows[2]["seen_at"] == "0000-00-00 00:00:00"
    assert rows[2]["opens"] == "838:59:59"
    assert rows[3]["born"] == "2021-02-30"
    assert rows[4]["updated_at"] == "2021-04-31 10:00:00"
    assert rows[1]["note"] == "ok 😀"
    assert rows[1]["born"] == dt.date(1980, 2, 29)
    assert rows[1]["opens"] == dt.time(8, 30)


def test_mysql_values_come_back_in_regular_python_types(legacy: Database) -> None:
    found = legacy.fetch_rows(
        "legacy_patients",
        ["id"],
        [(1,)],
        ["active", "is_vip", "flag", "balance", "score", "seen_at", "photo", "prefs", "token"],
    )
    assert found == {
        (1,): {
            "active": 1,
            "is_vip": 0,
            "flag": 1,
            "balance": Decimal("12.50"),
            "score": 0.1,
            "seen_at": dt.datetime(2024, 1, 31, 10, 0, tzinfo=dt.UTC),
            "photo": b"\x00\xff\x10",
            "prefs": {"a": 1},
            "token": uuid.UUID("6ccd780c-baba-1026-9564-5b8c656024db"),
        }
    }


def test_mysql_hash_reads_zero_dates_and_changes_with_them(
    mysql_url: str, legacy: Database
) -> None:
    columns = list(legacy.table("legacy_patients").columns)  # type: ignore[union-attr]
    before = all_hashes(legacy, "legacy_patients", ["id"], columns)
    assert sorted(before) == [(1,), (2,), (3,), (4,)]
    assert all_hashes(legacy, "legacy_patients", ["id"], columns) == before
    execute(mysql_url, "UPDATE legacy_patients SET born = '2000-01-01' WHERE id = 2")
    try:
        after = all_hashes(legacy, "legacy_patients", ["id"], columns)
    finally:
        execute(mysql_url, "UPDATE legacy_patients SET born = '0000-00-00' WHERE id = 2")
    assert after[(2,)] != before[(2,)]
    assert after[(1,)] == before[(1,)]
    assert all_hashes(legacy, "legacy_patients", ["id"], columns) == before


@pytest.mark.parametrize(
    ("column", "changed", "original"),
    [
        ("photo", "x'00ff11'", "x'00ff10'"),
        ("flag", "b'0'", "b'1'"),
        ("weight", "1.2345679", "1.2345678"),  # the 7th digit of a single-precision FLOAT
        ("location", "POINT(1, 3)", "POINT(1, 2)"),
    ],
)
def test_mysql_hash_sees_changes_in_binary_bit_float_and_geometry_columns(
    mysql_url: str, legacy: Database, column: str, changed: str, original: str
) -> None:
    before = all_hashes(legacy, "legacy_patients", ["id"], [column])
    execute(mysql_url, f"UPDATE legacy_patients SET {column} = {changed} WHERE id = 1")
    try:
        after = all_hashes(legacy, "legacy_patients", ["id"], [column])
    finally:
        execute(mysql_url, f"UPDATE legacy_patients SET {column} = {original} WHERE id = 1")
    assert after[(1,)] != before[(1,)]
    assert all_hashes(legacy, "legacy_patients", ["id"], [column]) == before


def test_mysql_hash_is_md5_of_length_prefixed_text(mysql_url: str, legacy: Database) -> None:
    hashes = all_hashes(legacy, "legacy_patients", ["id"], ["name", "nickname", "balance"])
    assert hashes[(1,)] == hashlib.md5(b"3:AnnN5:12.50", usedforsecurity=False).hexdigest()


def test_mysql_fetch_rows_matches_keys_exactly_despite_the_collation(legacy: Database) -> None:
    # utf8mb4_general_ci says 'ABC' = 'abc', 'a ' = 'a' and 'e' = 'é': diffmig does not.
    found = legacy.fetch_rows(
        "codes", ["code"], [("ABC",), ("a ",), ("e",), ("abc",), ("é",)], ["label"]
    )
    assert found == {("abc",): {"label": "lower"}, ("é",): {"label": "accent"}}
    assert legacy.fetch_rows("codes", ["code"], [("ABC",), ("A",)], ["label"]) == {}


def test_mysql_fetch_rows_keys_come_back_as_stored(legacy: Database) -> None:
    found = legacy.fetch_rows(
        "visits", ["office_code", "visit_no"], [("NYC", 1), ("NYC", 2), ("nyc", 2)], ["note"]
    )
    assert found == {("NYC", 1): {"note": "x"}, ("nyc", 2): {"note": "y"}}


def test_mysql_fetch_rows_accepts_keys_in_their_stored_text_form(
    mysql_url: str, legacy: Database
) -> None:
    table = new_table_name("dated")
    execute(
        mysql_url,
        f"CREATE TABLE {table} (day DATE NOT NULL, amount DECIMAL(8,2) NOT NULL, "
        "note VARCHAR(10), PRIMARY KEY (day, amount))",
        f"INSERT INTO {table} VALUES ('2024-01-31', 12.50, 'a'), ('0000-00-00', 0, 'zero')",
    )
    found = legacy.fetch_rows(
        table,
        ["day", "amount"],
        [("2024-01-31", "12.50"), ("0000-00-00", "0.00"), ("2024-01-31", "12.5")],
        ["note"],
    )
    assert found == {
        (dt.date(2024, 1, 31), Decimal("12.50")): {"note": "a"},
        ("0000-00-00", Decimal("0.00")): {"note": "zero"},
    }


def test_mysql_server_version_names_mariadb(mysql_db: Database) -> None:
    assert mysql_db.server_version().startswith("MariaDB 10.")
    assert mysql_db.dialect == "mysql"


def _kill_mysql_connections(database: str) -> None:
    engine = sa.create_engine(make_url(mysql_admin_url()).set(drivername="mysql+pymysql"))
    try:
        with engine.connect() as conn:
            ids = conn.execute(
                sa.text("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :db"),
                {"db": database},
            ).scalars()
            for thread_id in list(ids):
                conn.exec_driver_sql(f"KILL CONNECTION {int(thread_id)}")
    finally:
        engine.dispose()


def test_mysql_stream_that_loses_its_connection_raises_source_unavailable(
    mysql_url: str, mysql_db: Database
) -> None:
    table = new_table_name("big")
    # Wide keys, so the result is far larger than what socket buffers can hold.
    execute(
        mysql_url,
        f"CREATE TABLE {table} (k VARCHAR(200) NOT NULL PRIMARY KEY, v INT)",
        f"INSERT INTO {table} SELECT CONCAT(LPAD(seq, 10, '0'), REPEAT('k', 190)), seq "
        "FROM seq_1_to_200000",
    )
    stream = mysql_db.stream_key_hashes(table, ["k"], ["v"], batch_size=1000)
    assert len(next(stream)) == 1000
    _kill_mysql_connections(make_url(mysql_url).database or "")
    with pytest.raises(SourceUnavailableError, match="'legacy'"):
        for _ in stream:
            pass
    assert mysql_db.count_rows(table) == 200_000  # the pool recovers


def test_mysql_stream_abandoned_midway_leaves_the_database_usable(
    mysql_url: str, mysql_db: Database
) -> None:
    table = new_table_name("abandoned")
    execute(
        mysql_url,
        f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(100))",
        f"INSERT INTO {table} SELECT seq, REPEAT('v', 100) FROM seq_1_to_50000",
    )
    stream = mysql_db.stream_rows(table, ["id", "v"], batch_size=100)
    assert len(next(stream)) == 100
    stream.close()
    assert mysql_db.count_rows(table) == 50_000
