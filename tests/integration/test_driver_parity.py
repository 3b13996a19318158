"""mysqlclient and PyMySQL read every MariaDB value alike.

diffmig reads MySQL/MariaDB with mysqlclient where it is installed and PyMySQL where it is
not (engine/mysql_drivers.py). A run must not depend on which: the same table read through
both drivers gives the same Python values, of the same types, NULLs and legacy oddities
(zero and impossible dates) included — by the snapshot stream, by key and by hash.
"""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from migrationsapp.engine.connectors import ConnectionSpec, Database, open_database
from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.engine.mysql_drivers import mysql_driver
from tests.databases import (
    create_mysql_database,
    drop_mysql_database,
    engine_for,
    services_policy,
)
from tests.support.reliability import record

pytestmark = pytest.mark.services

COLUMNS = (
    "id INT PRIMARY KEY",
    "dt DATETIME",
    "dt6 DATETIME(6)",
    "d DATE",
    "ts TIMESTAMP NULL",
    "tm TIME",
    "tm3 TIME(3)",
    "b1 BIT(1)",
    "b12 BIT(12)",
    "amount DECIMAL(12,4)",
    "doc JSON",
    "doc_text LONGTEXT",
    "blob_ BLOB",
    "vbin VARBINARY(20)",
    "fbin BINARY(4)",
    "flag TINYINT(1)",
    "tiny TINYINT UNSIGNED",
    "big BIGINT UNSIGNED",
    "f FLOAT",
    "dbl DOUBLE",
    "astral VARCHAR(20) CHARACTER SET utf8mb4",
    "latin VARCHAR(20) CHARACTER SET latin1",
    "exact VARCHAR(20) COLLATE utf8mb4_bin",
    "choice ENUM('a','b')",
    "tags SET('x','y')",
    "yr YEAR",
    "uid UUID NULL",
    "fixed CHAR(5)",
    "body TEXT",
)
NAMES = [c.split()[0] for c in COLUMNS]
ROWS = (
    # Zero dates, the extremes of TIME, every BIT, 4-byte text, latin1 text, JSON.
    "(1, '0000-00-00 00:00:00', '2020-02-03 04:05:06.000007', '0000-00-00', "
    "'2020-01-01 00:00:00', '-838:59:59', '12:00:00.5', b'1', b'101010101010', 12345678.1234, "
    "'{\"a\": [1, 2.50, \"é\"]}', '[1]', x'00ff10', x'0001', x'61000000', 1, 255, "
    "18446744073709551615, 1.1, 0.1, '😀 ok', 'café ÿ', 'Ab ', 'b', 'x,y', 2024, "
    "'123e4567-e89b-12d3-a456-426614174000', 'ab', '')",
    # Impossible dates, TIME beyond a day, empty values, text that is not JSON.
    "(2, '2020-02-30 13:00:00', '0000-00-00 00:00:00.000000', '2020-00-10', "
    "'0000-00-00 00:00:00', '838:59:59', '00:00:00', b'0', b'0', -0.0001, NULL, 'not json', "
    "x'', x'', x'00000000', 0, 0, 0, -3.4e38, 1e308, '', '', '', 'a', '', 0, NULL, '', 'x')",
    # A year-0 date Python cannot hold, and a day that only ALLOW_INVALID_DATES stores.
    "(3, '0000-01-01 00:00:00', NULL, '2021-04-31', NULL, '23:59:59', '-00:00:01', b'1', "
    "b'111111111111', 0, '{}', '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(4, " + ", ".join(["NULL"] * (len(COLUMNS) - 1)) + ")",
)


@pytest.fixture(scope="module")
def legacy_url() -> Iterator[str]:
    url = create_mysql_database("parity")
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
            conn.exec_driver_sql(f"CREATE TABLE oddities ({', '.join(COLUMNS)})")
            conn.exec_driver_sql(f"INSERT INTO oddities VALUES {', '.join(ROWS)}")
    finally:
        engine.dispose()
    yield url
    drop_mysql_database(url)


def _open(url: str, tmp_path: pathlib.Path, driver: str, monkeypatch) -> Database:
    with monkeypatch.context() as patched:
        patched.setenv("DIFFMIG_MYSQL_DRIVER", driver)
        db = open_database(ConnectionSpec(name="legacy", url=url), services_policy(tmp_path))
    return db


@pytest.fixture
def both(legacy_url: str, tmp_path: pathlib.Path, monkeypatch) -> Iterator[list[Database]]:
    databases = [
        _open(legacy_url, tmp_path, "pymysql", monkeypatch),
        _open(legacy_url, tmp_path, "mysqlclient", monkeypatch),
    ]
    yield databases
    for db in databases:
        db.close()


def _typed(rows: dict) -> dict:
    """Values with their types: 1 and True, or '1' and 1, must not pass for each other."""
    return {key: {n: (type(v).__name__, v) for n, v in row.items()} for key, row in rows.items()}


def test_each_database_connects_with_the_driver_asked_for(both: list[Database]) -> None:
    assert [db.engine.dialect.driver for db in both] == ["pymysql", "mysqldb"]
    assert [db.server_version().split()[0] for db in both] == ["MariaDB", "MariaDB"]


def test_both_drivers_stream_the_same_values(both: list[Database]) -> None:
    streamed = []
    for db in both:
        rows = [row for batch in db.stream_rows("oddities", NAMES, batch_size=3) for row in batch]
        streamed.append(_typed({row["id"]: row for row in rows}))
    assert streamed[0] == streamed[1]
    # And the values are the engine's own, not whatever the first driver gave.
    first = streamed[0]
    assert first[1]["dt"] == ("str", "0000-00-00 00:00:00")
    assert first[1]["d"] == ("str", "0000-00-00")
    assert first[2]["dt"] == ("str", "2020-02-30 13:00:00")
    assert first[2]["dt6"] == ("str", "0000-00-00 00:00:00.000000")
    assert first[3]["dt"] == ("str", "0000-01-01 00:00:00")
    assert first[3]["d"] == ("str", "2021-04-31")
    assert first[1]["dt6"] == ("datetime", dt.datetime(2020, 2, 3, 4, 5, 6, 7))
    assert first[1]["ts"] == ("datetime", dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert first[2]["ts"] == ("str", "0000-00-00 00:00:00")
    assert first[1]["tm"] == ("str", "-838:59:59")
    assert first[1]["tm3"] == ("time", dt.time(12, 0, 0, 500000))
    assert first[3]["tm3"] == ("str", "-00:00:01")
    assert first[1]["b12"] == ("int", 0b101010101010)
    assert first[1]["amount"] == ("Decimal", Decimal("12345678.1234"))
    assert first[1]["doc"] == ("dict", {"a": [1, 2.5, "é"]})
    assert first[1]["blob_"] == ("bytes", b"\x00\xff\x10")
    assert first[1]["flag"] == ("int", 1)
    assert first[1]["big"] == ("int", 18446744073709551615)
    assert first[1]["astral"] == ("str", "😀 ok")
    assert first[1]["latin"] == ("str", "café ÿ")
    assert first[1]["exact"] == ("str", "Ab ")
    assert all(v == ("NoneType", None) for n, v in first[4].items() if n != "id")
    record(
        "dirty data",
        "the same MariaDB values read through mysqlclient and PyMySQL",
        tried=len(ROWS) * len(NAMES),
        held=len(ROWS) * len(NAMES),
        outcome="identical Python values and types with either driver",
    )


def test_both_drivers_fetch_and_hash_the_same(both: list[Database]) -> None:
    keys = [(1,), (2,), ("3",), (4,), (99,)]
    fetched = [_typed(db.fetch_rows("oddities", ["id"], keys, NAMES[1:])) for db in both]
    assert fetched[0] == fetched[1]
    assert sorted(fetched[0]) == [(1,), (2,), (3,), (4,)]
    hashes = [
        {k: h for batch in db.stream_key_hashes("oddities", ["id"], NAMES[1:]) for k, h in batch}
        for db in both
    ]
    assert hashes[0] == hashes[1]
    assert len(set(hashes[0].values())) == len(ROWS)


def test_a_zero_date_key_is_fetched_alike(legacy_url: str, both: list[Database]) -> None:
    # A key the driver cannot type (a zero date) must still find its row with either driver.
    engine = sa.create_engine(
        legacy_url.replace("mysql://", "mysql+pymysql://", 1), poolclass=NullPool
    )
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
            conn.exec_driver_sql("CREATE TABLE dated (day DATE PRIMARY KEY, label VARCHAR(10))")
            conn.exec_driver_sql(
                "INSERT INTO dated VALUES ('0000-00-00', 'zero'), ('2020-02-30', 'odd'), "
                "('2020-03-01', 'plain')"
            )
    finally:
        engine.dispose()
    streamed = [
        {k: h for batch in db.stream_key_hashes("dated", ["day"], ["label"]) for k, h in batch}
        for db in both
    ]
    assert streamed[0] == streamed[1]
    assert set(streamed[0]) == {("0000-00-00",), ("2020-02-30",), (dt.date(2020, 3, 1),)}
    for db in both:
        found = db.fetch_rows("dated", ["day"], list(streamed[0]), ["label"])
        assert {k: v["label"] for k, v in found.items()} == {
            ("0000-00-00",): "zero",
            ("2020-02-30",): "odd",
            (dt.date(2020, 3, 1),): "plain",
        }


def test_an_unknown_driver_choice_is_refused_in_one_line(monkeypatch) -> None:
    monkeypatch.setenv("DIFFMIG_MYSQL_DRIVER", "odbc")
    with pytest.raises(ConfigurationError) as refused:
        mysql_driver()
    assert str(refused.value) == (
        "DIFFMIG_MYSQL_DRIVER='odbc' is not a driver diffmig knows: "
        "write auto, mysqlclient or pymysql"
    )
    monkeypatch.setenv("DIFFMIG_MYSQL_DRIVER", "auto")
    assert mysql_driver() == "mysqldb"
