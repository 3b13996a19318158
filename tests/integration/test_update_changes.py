"""An update says which destination fields it changed, with their values before and after.

The writers report it from the database itself: PostgreSQL in the upsert's own statement
(the table as it was before), SQLite in a read just before the upsert. A value the database
holds as the same (``1.50`` and ``1.5`` in a numeric column, one instant in two time zones,
one JSON document with its keys in another order) is no change; NULL to a value and back
is. Rows the batch inserts, and rows the database refuses, report nothing. The stored form
is JSON-safe and bounded (``engine.changes``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa

from migrationsapp.engine.changes import TEXT_LIMIT, field_changes
from migrationsapp.engine.connectors import ConnectionSpec, open_database
from migrationsapp.engine.load import TableWriter
from tests.databases import engine_for, services_policy
from tests.support.reliability import record

PARIS = dt.timezone(dt.timedelta(hours=2))
AT = dt.datetime(2026, 5, 4, 10, 12, 3, tzinfo=dt.UTC)
COLUMNS = ["n", "amount", "price", "note", "at", "doc"]
A, B, C, D = (uuid.UUID(int=i) for i in (1, 2, 3, 4))


def first_rows() -> list[dict]:
    return [
        {
            "id": A,
            "n": None,
            "amount": Decimal("1.50"),
            "price": Decimal("2.50"),
            "note": "kept",
            "at": AT,
            "doc": {"a": 1, "b": [1, 2]},
        },
        {
            "id": B,
            "n": 7,
            "amount": Decimal("3"),
            "price": Decimal("1.00"),
            "note": "same",
            "at": AT,
            "doc": {"x": "y"},
        },
    ]


def second_rows() -> list[dict]:
    long_note = "é" * (TEXT_LIMIT + 50)
    return [
        {
            "id": A,
            "n": 5,  # NULL -> value
            "amount": Decimal("1.5"),  # the same number: no change
            "price": Decimal("2.75"),
            "note": long_note,
            "at": AT.astimezone(PARIS),  # the same instant: no change
            "doc": {"b": [1, 2], "a": 1},  # the same document: no change
        },
        # Rewritten as it is: existed, nothing changed.
        {
            "id": B,
            "n": 7,
            "amount": Decimal("3.000"),
            "price": Decimal("1"),
            "note": "same",
            "at": AT,
            "doc": {"x": "y"},
        },
        # New: inserted, no report.
        {
            "id": C,
            "n": 1,
            "amount": None,
            "price": None,
            "note": None,
            "at": None,
            "doc": None,
        },
    ]


def sqlite_table(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE item (id TEXT PRIMARY KEY, n INTEGER CHECK (n <> 13), amount NUMERIC, "
            "price NUMERIC, note TEXT, at TIMESTAMP, doc JSON)"
        )
    engine.dispose()


POSTGRES_DDL = (
    "CREATE TABLE item (id uuid PRIMARY KEY, n integer CHECK (n <> 13), amount numeric, "
    "price numeric(6, 2), note text, at timestamptz, doc json)"
)


@pytest.fixture(params=["postgresql", "sqlite"])
def writer(request, tmp_path):
    if request.param == "postgresql":
        url = request.getfixturevalue("target_pg")
        engine = engine_for(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(POSTGRES_DDL)
        engine.dispose()
    else:
        url = f"sqlite:///{tmp_path / 'target.sqlite3'}"
        sqlite_table(url)
    database = open_database(ConnectionSpec(name="target", url=url), services_policy(tmp_path), {})
    yield request.param, TableWriter(database, database.require_table("item"), "id")
    database.close()


@pytest.mark.services
def test_an_upsert_reports_exactly_the_fields_it_changed(writer):
    dialect, writer = writer
    assert writer.upsert(first_rows(), COLUMNS, changes=(first := {})) == {}
    assert first == {}  # every row was new

    rows = second_rows()
    # A row the database refuses (the CHECK) reports nothing, though it exists.
    refused_row = {**first_rows()[1], "id": D}
    assert writer.upsert([refused_row], COLUMNS) == {}
    rows.append({**refused_row, "n": 13})
    changes: dict = {}
    refused = writer.upsert(rows, COLUMNS, changes=changes)

    assert set(refused) == {D}
    assert set(changes) == {A, B}
    assert changes[B] == {}
    assert sorted(changes[A]) == ["n", "note", "price"]
    assert changes[A]["n"] == (None, 5)
    before_price, after_price = changes[A]["price"]
    assert Decimal(str(before_price)) == Decimal("2.50")
    assert Decimal(str(after_price)) == Decimal("2.75")
    assert changes[A]["note"] == ("kept", rows[0]["note"])

    stored = field_changes(changes[A])
    assert stored["n"] == [None, 5]
    assert stored["note"] == [
        "kept",
        {"truncated": "é" * TEXT_LIMIT, "length": TEXT_LIMIT + 50},
    ]
    assert [Decimal(v) for v in stored["price"]] == [Decimal("2.5"), Decimal("2.75")]

    # Back to NULL is a change too; a replay of the same batch changes nothing.
    again = [{**rows[0], "n": None}]
    assert writer.upsert(again, COLUMNS, changes=(back := {})) == {}
    assert back == {A: {"n": (5, None)}}
    assert writer.upsert(again, COLUMNS, changes=(replay := {})) == {}
    assert replay == {A: {}}
    record(
        "dirty data",
        f"an update's changed fields on {dialect}: NULL and back, numeric scale, time zones, "
        "JSON key order, long text, a refused row",
        tried=7,
        held=7,
        outcome="only the values the database holds as different are reported, exactly",
    )


@pytest.mark.embedded
def test_stored_changes_are_json_safe_and_bounded():
    raw = {
        "when": (dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=PARIS), None),
        "doc": ({"b": 1, "a": [Decimal("1.10")]}, {"a": []}),
        "blob": (b"\x00\xff", "x\x00y"),
        "exact": (Decimal("12345678901234567890.123"), 1.5),
        "flag": (True, False),
    }
    assert field_changes(raw) == {
        "when": ["2026-01-02T01:04:05+00:00", None],
        "doc": ['{"a":["1.10"],"b":1}', '{"a":[]}'],
        "blob": ["00ff", "x\u2400y"],
        "exact": ["12345678901234567890.123", 1.5],
        "flag": [True, False],
    }


@pytest.mark.services
def test_the_changed_fields_are_read_by_key_whatever_the_size_of_the_table(target_pg, tmp_path):
    """The change capture probes the table's key once per staged row: its plan reads no
    more of the table than the batch's rows, so a batch costs the same on a large table."""
    from migrationsapp.engine.load_postgresql import STAGE, _merge_reporting_changes

    engine = engine_for(target_pg)
    with engine.begin() as conn:
        conn.exec_driver_sql(POSTGRES_DDL)
        conn.exec_driver_sql(
            "INSERT INTO item (id, n, note) SELECT md5(g::text)::uuid, g, 'x' "
            "FROM generate_series(1, 40000) g WHERE g <> 13"
        )
        conn.exec_driver_sql("ANALYZE item")
    engine.dispose()
    database = open_database(
        ConnectionSpec(name="target", url=target_pg), services_policy(tmp_path), {}
    )
    try:
        writer = TableWriter(database, database.require_table("item"), "id")
        target = writer._target
        merge = (
            f"INSERT INTO item (id, {', '.join(COLUMNS)}) SELECT id, {', '.join(COLUMNS)} "
            f"FROM {STAGE} " + target.on_conflict(["id", *COLUMNS])
        )
        with database.engine.connect() as conn:
            # A batch of 5,000, as large as a run's, half of them rows the table holds.
            conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {STAGE} AS SELECT id, {', '.join(COLUMNS)} FROM item "
                "WHERE n <= 2500 UNION ALL SELECT gen_random_uuid(), "
                f"{', '.join(COLUMNS)} FROM item WHERE n <= 2500"
            )
            conn.exec_driver_sql(f"ANALYZE {STAGE}")
            statement = _merge_reporting_changes(target, merge, COLUMNS)
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}"))
            conn.rollback()
    finally:
        database.close()
    assert "Index Cond" in plan, plan
    assert "Seq Scan on item" not in plan, plan
