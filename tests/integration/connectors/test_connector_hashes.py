"""Content hashes and reads by key on every dialect (MariaDB, PostgreSQL, SQLite): one
snapshot, every row once, a hash that sees every change to a hashed column and nothing else."""

from __future__ import annotations

from decimal import Decimal

import pytest

from migrationsapp.engine.errors import ConfigurationError
from tests.integration.connectors.support import (
    PEOPLE,
    PEOPLE_COLUMNS,
    Source,
    all_hashes,
    create_people,
    execute,
    new_table_name,
    set_value,
)

pytestmark = pytest.mark.services


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
