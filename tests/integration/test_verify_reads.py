"""verify's reads of the destination on PostgreSQL: a batch's rows fetched by UUID, one index
probe per key, each row in the place of its UUID; and the batch's keys sent as one array
literal, which PostgreSQL reads back exactly whatever the text holds."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrationsapp.engine.connectors import ConnectionSpec, open_database
from migrationsapp.engine.pg_arrays import text_array, uuid_array
from migrationsapp.engine.verify_reads import DestinationTable
from tests.databases import engine_for, services_policy

pytestmark = pytest.mark.services

ODD = 'cost %s "net"'  # a column name with a placeholder's look and quotes


@pytest.fixture
def target(target_pg, tmp_path):
    engine = engine_for(target_pg)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA clinic")
        conn.execute(
            sa.text(
                'CREATE TABLE clinic.item (id uuid PRIMARY KEY, label text, "cost %s ""net""" '
                "numeric(10,2))"
            )
        )
        conn.exec_driver_sql("CREATE TABLE tagged (id text, label text)")  # no key, text ids
    database = open_database(
        ConnectionSpec(name="target", url=target_pg), services_policy(tmp_path), {}
    )
    yield database, engine
    database.close()
    engine.dispose()


def test_rows_come_back_in_the_order_of_their_uuids_and_none_where_there_is_no_row(target):
    database, engine = target
    present = [uuid.UUID(int=i) for i in range(1, 6)]
    with engine.begin() as conn:
        for i, record_uuid in enumerate(present):
            conn.execute(
                sa.text("INSERT INTO clinic.item VALUES (:id, :label, :cost)"),
                {"id": record_uuid, "label": f"item {i} 😀", "cost": None if i == 2 else i},
            )
    table = DestinationTable(database, "clinic.item", "id")
    absent = uuid.UUID(int=99)
    wanted = [present[3], absent, present[0], present[3], present[2]]
    rows = table.fetch(wanted, ["label", ODD])
    assert rows == [("item 3 😀", 3), None, ("item 0 😀", 0), ("item 3 😀", 3), ("item 2 😀", None)]
    assert all(type(row) is tuple for row in rows if row is not None)
    assert table.fetch([], ["label"]) == []

    pending = table.start_fetch(wanted, ["label"])
    assert pending.result() == [(r[0],) if r else None for r in rows]
    table.close()


def test_a_text_key_column_is_probed_as_text_and_two_rows_of_one_key_give_one(target):
    database, engine = target
    first, second = uuid.UUID(int=7), uuid.UUID(int=8)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO tagged VALUES (:a, 'a'), (:b, 'b'), (:b, 'b'), ('junk', 'j')"),
            {"a": str(first), "b": str(second)},
        )
    table = DestinationTable(database, "tagged", "id")
    assert table.fetch([second, first, uuid.UUID(int=9)], ["label"]) == [("b",), ("a",), None]


TEXTS = st.lists(
    st.one_of(
        st.text(st.characters(exclude_characters="\x00"), max_size=12),
        st.sampled_from(['"', "\\", "\\\\", '\\"', "NULL", "null", "{", "}", ",", " ", "", "a b"]),
    ),
    max_size=30,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(texts=TEXTS, uuids=st.lists(st.uuids(), max_size=10))
def test_an_array_literal_reads_back_exactly_as_its_texts_and_uuids(target_pg, texts, uuids):
    engine = engine_for(target_pg)
    try:
        with engine.connect() as conn:
            read = conn.exec_driver_sql(
                "SELECT %s::text[], %s::uuid[]", (text_array(texts), uuid_array(uuids))
            ).one()
    finally:
        engine.dispose()
    assert list(read[0]) == texts
    assert list(read[1]) == uuids
