"""Reading real MariaDB, PostgreSQL and SQLite databases through the connectors.

Each module-scoped fixture creates a scratch database (tests/databases.py) and drops it at
the end; tests that change data make their own table so that they do not depend on order.
MariaDB tables are written with sql_mode='ALLOW_INVALID_DATES' so that legacy oddities
(zero and impossible dates) can be stored, as old applications did.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import pathlib
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from migrationsapp.engine.connectors import (
    ConnectionPolicy,
    ConnectionSpec,
    Database,
    open_database,
)
from migrationsapp.engine.errors import ConfigurationError, SourceUnavailableError
from tests.databases import (
    create_mysql_database,
    create_postgres_database,
    drop_mysql_database,
    drop_postgres_database,
    mysql_admin_url,
    postgres_admin_url,
    services_policy,
)

pytestmark = pytest.mark.services

_DRIVERS = {
    "mysql": "mysql+pymysql",
    "postgresql": "postgresql+psycopg",
    "sqlite": "sqlite+pysqlite",
}


def execute(url: str, *statements: str, rows: tuple[str, list[dict]] | None = None) -> None:
    """Run DDL/DML as a legacy application would, outside the connector under test."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    parsed = parsed.set(drivername=_DRIVERS[backend])
    if backend == "mysql":
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    engine = sa.create_engine(parsed, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if backend == "mysql":
                # What old applications ran with: zero and impossible dates accepted.
                conn.exec_driver_sql("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
            for statement in statements:
                conn.exec_driver_sql(statement)
            if rows is not None:
                table, values = rows
                if backend == "sqlite":  # sqlite3 cannot bind Decimal
                    values = [{k: _sqlite_value(v) for k, v in row.items()} for row in values]
                names = list(values[0])
                target = sa.table(table, *(sa.column(n) for n in names))
                conn.execute(sa.insert(target), values)
    finally:
        engine.dispose()


def _sqlite_value(value: object) -> object:
    return str(value) if isinstance(value, Decimal) else value


def all_hashes(db: Database, table: str, keys: list[str], hashed: list[str]) -> dict[tuple, str]:
    out: dict[tuple, str] = {}
    for batch in db.stream_key_hashes(table, keys, hashed, batch_size=2):
        for key, digest in batch:
            assert key not in out, f"key {key} streamed twice"
            out[key] = digest
    return out


def new_table_name(label: str) -> str:
    return f"{label}_{secrets.token_hex(3)}"


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("sqlite_root")


@pytest.fixture(scope="module")
def policy(sqlite_root: pathlib.Path) -> ConnectionPolicy:
    return services_policy(sqlite_root)


@pytest.fixture(scope="module")
def mysql_url() -> Iterator[str]:
    url = create_mysql_database("connectors")
    yield url
    drop_mysql_database(url)


@pytest.fixture(scope="module")
def postgresql_url() -> Iterator[str]:
    url = create_postgres_database("connectors")
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="module")
def sqlite_url(sqlite_root: pathlib.Path) -> str:
    return f"sqlite:///{sqlite_root / 'legacy.db'}"


def _open(url: str, policy: ConnectionPolicy, **spec: str) -> Database:
    return open_database(ConnectionSpec(name="legacy", url=url, **spec), policy, environ={})


@pytest.fixture(scope="module")
def mysql_db(mysql_url: str, policy: ConnectionPolicy) -> Iterator[Database]:
    db = _open(mysql_url, policy)
    yield db
    db.close()


@pytest.fixture(scope="module")
def postgresql_db(postgresql_url: str, policy: ConnectionPolicy) -> Iterator[Database]:
    db = _open(postgresql_url, policy)
    yield db
    db.close()


@pytest.fixture(scope="module")
def sqlite_db(sqlite_url: str, policy: ConnectionPolicy) -> Iterator[Database]:
    db = _open(sqlite_url, policy)
    yield db
    db.close()


@dataclass
class Source:
    dialect: str
    url: str
    db: Database


@pytest.fixture(scope="module", params=["mysql", "postgresql", "sqlite"])
def source(request: pytest.FixtureRequest) -> Source:
    dialect = request.param
    return Source(
        dialect=dialect,
        url=request.getfixturevalue(f"{dialect}_url"),
        db=request.getfixturevalue(f"{dialect}_db"),
    )


PEOPLE = [
    {"id": 1, "name": "Ann", "nickname": None, "note": "first", "balance": Decimal("10.00")},
    {"id": 2, "name": "Bob", "nickname": "", "note": "😀 emoji", "balance": Decimal("0.50")},
    {"id": 3, "name": "Cy", "nickname": "C", "note": "x", "balance": None},
    {"id": 4, "name": "Dee", "nickname": "D", "note": "", "balance": Decimal("-3.10")},
    {"id": 5, "name": "Eve", "nickname": "E", "note": None, "balance": Decimal("99.99")},
]
PEOPLE_COLUMNS = ["id", "name", "nickname", "note", "balance"]


def create_people(source: Source) -> str:
    """A fresh people table with PEOPLE in it; its name."""
    table = new_table_name("people")
    charset = " DEFAULT CHARSET=utf8mb4" if source.dialect == "mysql" else ""
    execute(
        source.url,
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, "
        f"nickname VARCHAR(50), note TEXT, balance DECIMAL(10,2)){charset}",
        rows=(table, PEOPLE),
    )
    return table


def set_value(source: Source, table: str, column: str, value: object, row_id: int = 1) -> None:
    parsed = make_url(source.url)
    engine = sa.create_engine(parsed.set(drivername=_DRIVERS[parsed.get_backend_name()]))
    if source.dialect == "sqlite":
        value = _sqlite_value(value)
    try:
        with engine.begin() as conn:
            target = sa.table(table, sa.column("id"), sa.column(column))
            conn.execute(sa.update(target).where(target.c.id == row_id).values({column: value}))
    finally:
        engine.dispose()


# --- content hashes, on every dialect ------------------------------------------------


def test_stream_key_hashes_returns_every_row_exactly_once(source: Source) -> None:
    table = create_people(source)
    batches = list(source.db.stream_key_hashes(table, ["id"], PEOPLE_COLUMNS, batch_size=2))
    assert [len(b) for b in batches] == [2, 2, 1]
    keys = [key for batch in batches for key, _ in batch]
    assert sorted(keys) == [(1,), (2,), (3,), (4,), (5,)]
    assert all(len(digest) == 32 for batch in batches for _, digest in batch)


def test_hash_is_the_same_on_an_unchanged_reread(source: Source) -> None:
    table = create_people(source)
    first = all_hashes(source.db, table, ["id"], PEOPLE_COLUMNS)
    assert all_hashes(source.db, table, ["id"], PEOPLE_COLUMNS) == first
    assert len(set(first.values())) == len(PEOPLE)


@pytest.mark.parametrize(
    ("column", "new_value"),
    [
        pytest.param("name", "ANN", id="case-only"),
        pytest.param("name", "Ann ", id="trailing-space"),
        pytest.param("nickname", "", id="null-to-empty"),
        pytest.param("note", "first 😀", id="emoji"),
        pytest.param("balance", Decimal("10.01"), id="decimal-cent"),
        pytest.param("balance", None, id="value-to-null"),
    ],
)
def test_hash_changes_when_a_hashed_column_changes(
    source: Source, column: str, new_value: object
) -> None:
    table = create_people(source)
    before = all_hashes(source.db, table, ["id"], PEOPLE_COLUMNS)
    set_value(source, table, column, new_value, row_id=1)
    after = all_hashes(source.db, table, ["id"], PEOPLE_COLUMNS)
    assert after[(1,)] != before[(1,)]
    assert {k: v for k, v in after.items() if k != (1,)} == {
        k: v for k, v in before.items() if k != (1,)
    }


def test_hash_ignores_a_change_to_a_column_not_hashed(source: Source) -> None:
    table = create_people(source)
    before = all_hashes(source.db, table, ["id"], ["id", "name", "balance"])
    set_value(source, table, "note", "changed, but not hashed", row_id=1)
    assert all_hashes(source.db, table, ["id"], ["id", "name", "balance"]) == before


def test_hash_follows_the_given_column_order(source: Source) -> None:
    table = create_people(source)
    forward = all_hashes(source.db, table, ["id"], ["name", "note"])
    backward = all_hashes(source.db, table, ["id"], ["note", "name"])
    assert forward[(1,)] != backward[(1,)]


def test_hash_tells_apart_shifted_separators_and_null_from_empty(source: Source) -> None:
    table = new_table_name("pairs")
    execute(
        source.url,
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, a VARCHAR(10), b VARCHAR(10))",
        rows=(
            table,
            [
                {"id": 1, "a": "a|b", "b": "c"},
                {"id": 2, "a": "a", "b": "b|c"},
                {"id": 3, "a": None, "b": ""},
                {"id": 4, "a": "", "b": None},
                {"id": 5, "a": "N", "b": None},
                {"id": 6, "a": None, "b": None},
                {"id": 7, "a": "1:a", "b": ""},
                {"id": 8, "a": "", "b": "1:a"},
            ],
        ),
    )
    hashes = all_hashes(source.db, table, ["id"], ["a", "b"])
    assert len(set(hashes.values())) == 8


def test_stream_rows_reads_every_row_with_its_values(source: Source) -> None:
    table = create_people(source)
    rows = [
        r for batch in source.db.stream_rows(table, PEOPLE_COLUMNS, batch_size=3) for r in batch
    ]
    by_id = {r["id"]: r for r in rows}
    assert len(rows) == 5
    assert by_id[2]["note"] == "😀 emoji"
    assert by_id[1]["nickname"] is None
    assert by_id[2]["nickname"] == ""
    # SQLite has no decimal type: it stores (and gives back) a number.
    assert Decimal(str(by_id[4]["balance"])) == Decimal("-3.10")


def test_fetch_rows_by_key_across_chunks(source: Source) -> None:
    table = new_table_name("many")
    execute(
        source.url,
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, label VARCHAR(20))",
        rows=(table, [{"id": i, "label": f"row {i}"} for i in range(1, 2501)]),
    )
    wanted = [(i,) for i in range(1, 2501)] + [(9999,), (10000,)]
    found = source.db.fetch_rows(table, ["id"], wanted, ["label"])
    assert len(found) == 2500
    assert found[(1234,)] == {"label": "row 1234"}


def test_fetch_rows_with_a_composite_key(source: Source) -> None:
    table = new_table_name("visits")
    execute(
        source.url,
        f"CREATE TABLE {table} (office VARCHAR(10) NOT NULL, visit_no INTEGER NOT NULL, "
        "note VARCHAR(20), PRIMARY KEY (office, visit_no))",
        rows=(
            table,
            [
                {"office": "NYC", "visit_no": 1, "note": "a"},
                {"office": "NYC", "visit_no": 2, "note": "b"},
                {"office": "BOS", "visit_no": 1, "note": "c"},
            ],
        ),
    )
    found = source.db.fetch_rows(
        table, ["office", "visit_no"], [("NYC", 2), ("BOS", 1), ("BOS", 2)], ["note"]
    )
    assert found == {("NYC", 2): {"note": "b"}, ("BOS", 1): {"note": "c"}}
    info = source.db.table(table)
    assert info is not None
    assert info.primary_key == ("office", "visit_no")


def test_fetch_rows_finds_keys_with_a_null_part(source: Source) -> None:
    table = new_table_name("nullable_keys")
    execute(
        source.url,
        f"CREATE TABLE {table} (code VARCHAR(10), n INTEGER, label VARCHAR(10))",
        rows=(
            table,
            [
                {"code": "a", "n": None, "label": "x"},
                {"code": None, "n": 1, "label": "y"},
                {"code": "None", "n": 1, "label": "z"},
            ],
        ),
    )
    found = source.db.fetch_rows(
        table, ["code", "n"], [("a", None), (None, 1), ("None", 1), ("b", None)], ["label"]
    )
    assert found == {
        ("a", None): {"label": "x"},
        (None, 1): {"label": "y"},
        ("None", 1): {"label": "z"},
    }
    assert source.db.fetch_rows(table, ["code", "n"], [("None", None)], ["label"]) == {}


def test_unknown_column_is_refused_before_reading(source: Source) -> None:
    table = create_people(source)
    with pytest.raises(ConfigurationError, match="no column 'nope'"):
        source.db.stream_key_hashes(table, ["id"], ["name", "nope"])
    assert source.db.table("no_such_table") is None


def test_writes_during_a_stream_do_not_show_in_it(source: Source) -> None:
    table = create_people(source)
    stream = source.db.stream_key_hashes(table, ["id"], ["name"], batch_size=2)
    seen = [key for key, _ in next(stream)]
    if source.dialect != "sqlite":  # SQLite's reader blocks the writer (rollback journal)
        execute(source.url, f"INSERT INTO {table} (id, name) VALUES (6, 'Late')")
    seen += [key for batch in stream for key, _ in batch]
    assert sorted(seen) == [(1,), (2,), (3,), (4,), (5,)]


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
    db = _open(postgresql_url, policy)
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
    scoped = _open(postgresql_url, policy, schema="legacy")
    plain = _open(postgresql_url, policy)
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


# --- SQLite and unreachable servers -----------------------------------------------------


def test_sqlite_introspection_and_version(sqlite_url: str, sqlite_db: Database) -> None:
    execute(
        sqlite_url,
        "CREATE TABLE kinds (id INTEGER PRIMARY KEY, flag BOOLEAN, money NUMERIC(10,2), "
        "day DATE, at DATETIME, name VARCHAR(10) NOT NULL DEFAULT 'x', raw BLOB, anything)",
    )
    info = sqlite_db.table("kinds")
    assert info is not None
    assert {n: c.kind for n, c in info.columns.items()} == {
        "id": "integer",
        "flag": "boolean",
        "money": "numeric",
        "day": "date",
        "at": "datetime",
        "name": "text",
        "raw": "bytes",
        "anything": "other",
    }
    assert (info.columns["id"].autoincrement, info.columns["id"].nullable) == (True, False)
    assert (info.columns["name"].has_default, info.columns["name"].nullable) == (True, False)
    assert sqlite_db.server_version().startswith("SQLite 3.")


@pytest.mark.parametrize(
    "url",
    ["mysql://root@127.0.0.1:1/nothing", "postgresql://postgres@127.0.0.1:1/nothing"],
    ids=["mysql", "postgresql"],
)
def test_unreachable_database_raises_source_unavailable_naming_the_connection(
    url: str, policy: ConnectionPolicy
) -> None:
    db = open_database(ConnectionSpec(name="gone", url=url), policy, environ={})
    try:
        with pytest.raises(SourceUnavailableError, match=r"database 'gone' .*127\.0\.0\.1:1"):
            db.server_version()
    finally:
        db.close()


def test_placeholders_are_expanded_when_opening(mysql_url: str, policy: ConnectionPolicy) -> None:
    db = open_database(
        ConnectionSpec(name="legacy", url="${DIFFMIG_LEGACY_URL}"),
        policy,
        environ={"DIFFMIG_LEGACY_URL": mysql_url},
    )
    try:
        assert db.server_version().startswith("MariaDB")
    finally:
        db.close()
