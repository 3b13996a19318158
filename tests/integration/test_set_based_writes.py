"""Set-based writes: a batch is one COPY and one statement, and bad rows still fail alone.

The destination writer encodes a batch column by column, COPYs it into a staging table and
merges it with one ``INSERT … ON CONFLICT``; deletes are one ``DELETE … = ANY``; the second
pass's updates one ``UPDATE … FROM`` the stage. When the database refuses a batch, parts of
it are written again in savepoints until each bad row stands alone, refused with the reason
the database gives for that row alone. The control database receives the record map and the
record events by COPY too. These tests hold the writers to exactly the outcome of writing
every row on its own: the same rows written, the same rows refused, the same reasons.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import uuid
import zoneinfo
from decimal import Decimal

import pytest
import sqlalchemy as sa
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrationsapp.engine.connectors import ConnectionSpec, open_database
from migrationsapp.engine.copy_text import NUL_REASON, Same, encode_columns
from migrationsapp.engine.ids import destination_uuid
from migrationsapp.engine.load import TableWriter
from migrationsapp.engine.ports import BatchResult, RecordOutcome
from migrationsapp.models import (
    MigrationControl,
    QuarantinedRecord,
    RecordEvent,
    RecordMap,
)
from migrationsapp.models.choices import EntityState, SessionStatus
from migrationsapp.selectors.records import record_history, similar_keys
from migrationsapp.services.batches import ControlRunPorts
from migrationsapp.services.run_ports import EntityRunPorts
from migrationsapp.services.verify import ControlVerifyPorts
from tests.databases import engine_for, services_policy
from tests.factories import (
    DifferentialAnalysisResultFactory,
    MigrationControlFactory,
    MigrationStatusFactory,
    RecordMapFactory,
)
from tests.support.reliability import record

EXAMPLES = {"default": 25, "big": 200}[os.environ.get("DIFFMIG_HYPOTHESIS_PROFILE", "default")]

PERSON_DDL = (
    "CREATE TABLE team (id uuid PRIMARY KEY)",
    "CREATE TABLE person (id uuid PRIMARY KEY, n integer, code varchar(5), "
    "amount numeric(5, 2), team_id uuid REFERENCES team (id), name text NOT NULL, "
    "CONSTRAINT not_thirteen CHECK (n <> 13))",
)
TEAM = uuid.UUID(int=1)
COLUMNS = ["n", "code", "amount", "team_id", "name"]


def good_values(i: int) -> dict:
    return {
        "n": 100 + i,
        "code": f"c{i % 1000}",
        "amount": Decimal(i % 1000) / 100,
        "team_id": TEAM,
        "name": f"person\t{i}\\ \n",
    }


# A bad value per kind: (column, value, the start of the reason the database gives alone).
BAD = {
    "out of range": (
        "n",
        2**40,
        'destination refused the row: value "1099511627776" is out of '
        "range for type integer CONTEXT:  COPY diffmig_stage, line 1, column n: "
        '"1099511627776"',
    ),
    "too long": (
        "code",
        "too long",
        "destination refused the row: value too long for type "
        "character varying(5) CONTEXT:  COPY diffmig_stage, line 1, column code: "
        '"too long"',
    ),
    "numeric overflow": (
        "amount",
        Decimal("123456.78"),
        "destination refused the row: numeric "
        "field overflow DETAIL:  A field with precision 5, scale 2 must round "
        "to an absolute value less than 10^3.",
    ),
    "missing parent": (
        "team_id",
        uuid.UUID(int=2),
        "destination refused the row: insert or "
        'update on table "person" violates foreign key constraint '
        '"person_team_id_fkey"',
    ),
    "null": (
        "name",
        None,
        'destination refused the row: null value in column "name" of '
        'relation "person" violates not-null constraint',
    ),
    "check": (
        "n",
        13,
        'destination refused the row: new row for relation "person" violates '
        'check constraint "not_thirteen"',
    ),
}
# The column a refusal names: the database names it for values COPY refuses and NOT NULL.
NAMED = {"out of range": "n", "too long": "code", "numeric overflow": "amount", "null": "name"}


@pytest.fixture
def target(target_pg, tmp_path):
    engine = engine_for(target_pg)
    with engine.begin() as conn:
        for statement in PERSON_DDL:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql("INSERT INTO team VALUES (%s)", (TEAM,))
    database = open_database(
        ConnectionSpec(name="target", url=target_pg), services_policy(tmp_path), {}
    )
    yield database, engine
    database.close()
    engine.dispose()


def person_writer(database) -> TableWriter:
    return TableWriter(database, database.require_table("person"), "id")


def persons(engine) -> dict[uuid.UUID, dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM person")).mappings().all()
    return {row["id"]: {c: row[c] for c in COLUMNS} for row in rows}


def batch(size: int, bad: dict[int, str]) -> list[dict]:
    rows = []
    for i in range(size):
        values = good_values(i)
        if i in bad:
            column, value, _ = BAD[bad[i]]
            values[column] = value
        rows.append({"id": uuid.UUID(int=1000 + i), **values})
    return rows


@pytest.mark.services
@pytest.mark.parametrize("fresh", [False, True], ids=["upsert", "fresh"])
def test_a_batch_writes_its_good_rows_and_refuses_each_bad_one_with_its_own_reason(target, fresh):
    """``fresh`` rows go straight into the table by COPY; a bad one takes that COPY back and
    the batch goes through the stage: the same outcome either way."""
    database, engine = target
    writer = person_writer(database)
    # Bad rows early, late and side by side, of every kind: the parts COPY stops at and the
    # ones only the merge refuses.
    bad = {
        0: "out of range",
        7: "check",
        8: "null",
        57: "too long",
        58: "missing parent",
        120: "numeric overflow",
        199: "out of range",
    }
    rows = batch(200, bad)

    refused = writer.upsert(rows, COLUMNS, fresh=fresh)

    assert {u.int - 1000: e.rule for u, e in refused.items()} == {i: "destination" for i in bad}
    for index, kind in bad.items():
        error = refused[uuid.UUID(int=1000 + index)]
        assert str(error).removeprefix(f"field {error.field!r}: ").startswith(BAD[kind][2])
        assert error.field == NAMED.get(kind)
    written = persons(engine)
    assert written == {r["id"]: {c: r[c] for c in COLUMNS} for r in rows if r["id"] not in refused}

    # A replayed batch (the control commit was lost) writes the same rows, refuses the same.
    again = writer.upsert(rows, COLUMNS, fresh=fresh)
    assert {u: str(e) for u, e in again.items()} == {u: str(e) for u, e in refused.items()}
    assert persons(engine) == written
    record(
        "dirty data",
        "bad values and constraint violations among good rows of one batch",
        tried=len(bad),
        held=len(bad),
        outcome="each bad row refused alone with the reason the database gives for it alone; "
        "every other row of the batch written",
    )


@pytest.mark.services
def test_rows_believed_new_that_the_table_holds_already_are_updated(target):
    database, engine = target
    writer = person_writer(database)
    rows = batch(30, {})
    assert writer.upsert(rows[:10], COLUMNS) == {}  # written, the control commit lost
    renamed = [{**row, "name": f"again {i}"} for i, row in enumerate(rows)]

    assert writer.upsert(renamed, COLUMNS, fresh=True) == {}

    assert persons(engine) == {r["id"]: {c: r[c] for c in COLUMNS} for r in renamed}


@pytest.mark.services
def test_any_mix_of_bad_rows_fails_exactly_those_rows(target):
    database, engine = target
    writer = person_writer(database)
    tried = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        st.integers(min_value=1, max_value=80).flatmap(
            lambda size: st.tuples(
                st.just(size),
                st.dictionaries(
                    st.integers(min_value=0, max_value=size - 1),
                    st.sampled_from(sorted(BAD)),
                    max_size=size,
                ),
            )
        )
    )
    def check(case):
        nonlocal tried
        size, bad = case
        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE person")
        rows = batch(size, bad)
        # Rows believed new (a baseline's) take the straight COPY first: half the cases.
        refused = writer.upsert(rows, COLUMNS, fresh=size % 2 == 0)
        assert {u.int - 1000 for u in refused} == set(bad)
        for index, kind in bad.items():
            error = refused[uuid.UUID(int=1000 + index)]
            assert BAD[kind][2] in str(error)
        assert persons(engine) == {
            r["id"]: {c: r[c] for c in COLUMNS} for r in rows if r["id"] not in refused
        }
        tried += 1

    check()
    record(
        "dirty data",
        "batches of 1 to 80 rows with any number of bad rows of six kinds, anywhere",
        tried=tried,
        held=tried,
        outcome="exactly the bad rows refused, each with its own reason; the others written",
    )


TYPES_DDL = (
    "CREATE TABLE typed (id uuid PRIMARY KEY, t text, i bigint, d numeric, f double precision, "
    "b boolean, day date, ts timestamp, tz timestamptz, tm time, u uuid, j jsonb, raw bytea, "
    "arr integer[], span interval)"
)
TYPED = ["t", "i", "d", "f", "b", "day", "ts", "tz", "tm", "u", "j", "raw", "arr", "span"]


@pytest.fixture
def typed(target_pg, tmp_path):
    engine = engine_for(target_pg)
    with engine.begin() as conn:
        conn.exec_driver_sql(TYPES_DDL)
    database = open_database(
        ConnectionSpec(name="target", url=target_pg), services_policy(tmp_path), {}
    )
    yield TableWriter(database, database.require_table("typed"), "id"), engine
    database.close()
    engine.dispose()


def read_typed(engine) -> dict[uuid.UUID, dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM typed")).mappings().all()
    return {row["id"]: dict(row) for row in rows}


TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@pytest.mark.services
def test_values_of_every_type_read_back_as_written(typed):
    writer, engine = typed
    tried = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        st.lists(
            st.fixed_dictionaries(
                {
                    "t": st.none() | TEXT,
                    "i": st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
                    "d": st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=4),
                    "f": st.none() | st.floats(allow_nan=False),
                    "b": st.none() | st.booleans(),
                    "day": st.none() | st.dates(),
                    "ts": st.none() | st.datetimes(),
                    "tz": st.none() | st.datetimes(timezones=st.just(dt.UTC)),
                    "tm": st.none() | st.times(),
                    "u": st.none() | st.uuids(),
                    "j": st.none() | st.dictionaries(TEXT, st.integers() | TEXT, max_size=3),
                    "raw": st.none() | st.binary(max_size=20),
                    "arr": st.none() | st.lists(st.integers(-(2**31), 2**31 - 1), max_size=3),
                    "span": st.none()
                    | st.timedeltas(
                        min_value=dt.timedelta(days=-9999), max_value=dt.timedelta(9999)
                    ),
                }
            ),
            min_size=1,
            max_size=12,
        )
    )
    def check(values):
        nonlocal tried
        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE typed")
        rows = [{"id": uuid.uuid4(), **v} for v in values]
        assert writer.upsert(rows, TYPED) == {}
        back = read_typed(engine)
        for row in rows:
            got = back[row["id"]]
            for column in TYPED:
                sent, read = row[column], got[column]
                if column == "j" and sent is not None:
                    assert read == sent
                elif column == "raw" and sent is not None:
                    assert bytes(read) == sent
                elif column == "f" and sent is not None and math.isinf(sent):
                    assert read == sent
                else:
                    assert read == sent, (column, sent, read)
        tried += len(rows)

    check()
    record(
        "dirty data",
        "values of 14 column types (text with tabs, newlines and backslashes, extreme numbers, "
        "dates, zones, JSON, bytes, arrays, intervals) written by the batch encoding",
        tried=tried,
        held=tried,
        outcome="every value reads back from the destination exactly as written",
    )


@pytest.mark.services
def test_values_only_the_encoder_or_the_database_can_refuse_fail_their_row(typed):
    writer, engine = typed
    zone = zoneinfo.ZoneInfo("Europe/Amsterdam")
    fine = {"id": uuid.uuid4(), "t": "x", "tz": dt.datetime(1900, 1, 1, tzinfo=zone)}
    nul_json = {"id": uuid.uuid4(), "j": '"a\x00b"'}  # a JSON text with a NUL byte
    nul_array = {"id": uuid.uuid4(), "arr": ["1\x00"]}
    odd = {"id": uuid.uuid4(), "j": {"set": {1, 2}}}  # no JSON form
    bad_json = {"id": uuid.uuid4(), "j": "{not json"}
    rows = [fine, nul_json, nul_array, odd, bad_json]
    refused = writer.upsert([{c: r.get(c) for c in ["id", *TYPED]} for r in rows], TYPED)

    assert set(refused) == {nul_json["id"], nul_array["id"], odd["id"], bad_json["id"]}
    assert (refused[nul_json["id"]].field, str(refused[nul_json["id"]])) == (
        "j",
        f"field 'j': destination refused the row: {NUL_REASON}",
    )
    assert refused[nul_array["id"]].field == "arr"
    assert refused[odd["id"]].field == "j"
    assert "invalid input syntax for type json" in str(refused[bad_json["id"]])
    assert read_typed(engine)[fine["id"]]["tz"] == fine["tz"]
    record(
        "dirty data",
        "values the COPY encoding cannot send (NUL bytes in JSON and arrays, a set in JSON) "
        "or the database refuses (malformed JSON)",
        tried=4,
        held=4,
        outcome="each fails its own row with the column named; the batch's other rows written",
    )


def test_the_encoding_escapes_copy_specials_and_repeats_shared_values():
    encoded = encode_columns(
        ["a", "b", "c"],
        [["tab\there", None, "back\\slash\r\n"], Same(7), [b"\x00\xff", None, b""]],
        count=3,
    )
    assert encoded.lines() == (
        b"tab\\there\t7\t\\\\x00ff\n\\N\t7\t\\N\nback\\\\slash\\r\\n\t7\t\\\\x\n"
    )
    nul = encode_columns(["a"], [["ok", "x\x00y"]], count=2)
    assert nul.refused == {1: ("a", NUL_REASON)}
    assert nul.lines() == b"ok\n"


DELETES_DDL = (
    "CREATE TABLE node (id uuid PRIMARY KEY, parent_id uuid REFERENCES node (id), "
    "gone_at timestamptz)",
    "CREATE TABLE pin (id uuid PRIMARY KEY, node_id uuid NOT NULL REFERENCES node (id))",
)


def node_ids(n: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=5000 + i) for i in range(n)]


@pytest.fixture
def nodes(target_pg, tmp_path):
    engine = engine_for(target_pg)
    ids = node_ids(40)
    with engine.begin() as conn:
        for statement in DELETES_DDL:
            conn.exec_driver_sql(statement)
        # Chains of five: node i's parent is node i-1, but every fifth node is a root.
        # Another table pins node 32 (inside a chain) and node 35 (a root).
        for i, node in enumerate(ids):
            conn.exec_driver_sql(
                "INSERT INTO node (id, parent_id) VALUES (%s, %s)",
                (node, ids[i - 1] if i % 5 else None),
            )
        for i in (32, 35):
            conn.exec_driver_sql("INSERT INTO pin VALUES (%s, %s)", (uuid.uuid4(), ids[i]))
    database = open_database(
        ConnectionSpec(name="target", url=target_pg), services_policy(tmp_path), {}
    )
    yield TableWriter(database, database.require_table("node"), "id"), engine, ids
    database.close()
    engine.dispose()


def remaining(engine) -> set[uuid.UUID]:
    with engine.connect() as conn:
        return {row[0] for row in conn.exec_driver_sql("SELECT id FROM node")}


@pytest.mark.services
def test_deletes_go_together_and_only_rows_still_referenced_are_refused(nodes):
    writer, engine, ids = nodes
    # Parents listed before their children, and the two pinned nodes among them.
    refused = writer.delete(ids[20:])

    # 32 stays (pinned), and so do 31 and 30, whose children stay; 35 stays (pinned), its
    # children go. Everything else goes, children and parents in the same batch.
    kept = {ids[i] for i in (30, 31, 32, 35)}
    assert set(refused) == kept
    for i in (32, 35):
        assert refused[ids[i]].startswith(
            'destination refused the row: update or delete on table "node" violates foreign '
            'key constraint "pin_node_id_fkey" on table "pin"'
        )
    for i in (30, 31):
        assert refused[ids[i]].startswith(
            'destination refused the row: update or delete on table "node" violates foreign '
            'key constraint "node_parent_id_fkey" on table "node"'
        )
    assert remaining(engine) == set(ids[:20]) | kept
    record(
        "faults",
        "a delete batch of rows referencing each other, some still referenced from elsewhere",
        tried=len(ids[20:]),
        held=len(ids[20:]),
        outcome="rows referencing each other deleted together; only rows still referenced "
        "stay, each with the database's reason",
    )


@pytest.mark.services
def test_soft_deletes_and_cleared_links_are_set_based(nodes):
    writer, engine, ids = nodes
    first = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert writer.soft_delete(ids[:3], "gone_at", first) == {}
    assert writer.soft_delete(ids[:5], "gone_at", first + dt.timedelta(days=1)) == {}
    assert writer.clear_columns(ids[:40], ["parent_id"]) == {}
    with engine.connect() as conn:
        rows = dict(conn.exec_driver_sql("SELECT id, gone_at FROM node").fetchall())
        parents = {r[0] for r in conn.exec_driver_sql("SELECT parent_id FROM node")}
    assert [rows[i] for i in ids[:5]] == [first] * 3 + [first + dt.timedelta(days=1)] * 2
    assert rows[ids[5]] is None
    assert parents == {None}


@pytest.mark.services
def test_the_second_pass_updates_through_the_stage_and_refuses_missing_parents(nodes):
    writer, engine, ids = nodes
    ghost = uuid.UUID(int=99)
    updates = [{"id": ids[i], "parent_id": ids[0] if i != 7 else ghost} for i in range(1, 12)]
    refused = writer.update_columns(updates, ["parent_id"])
    assert list(refused) == [ids[7]]
    assert 'violates foreign key constraint "node_parent_id_fkey"' in refused[ids[7]]
    with engine.connect() as conn:
        parents = dict(conn.exec_driver_sql("SELECT id, parent_id FROM node").fetchall())
    assert {parents[ids[i]] for i in range(1, 12) if i != 7} == {ids[0]}
    assert parents[ids[7]] == ids[6]


# --- the control database --------------------------------------------------------------------


def control_ports(entity: str = "item", version: int = 2) -> ControlRunPorts:
    session = MigrationStatusFactory(overall_status=SessionStatus.RUNNING)
    analysis = DifferentialAnalysisResultFactory(entity_type=entity, mapping_version=version)
    control = MigrationControlFactory(
        session=session, entity_type=entity, state=EntityState.RUNNING, lease_owner="me"
    )
    return ControlRunPorts(
        control_id=control.pk,
        run_id=control.run_id,
        session_id=session.migration_session_id,
        analysis_id=analysis.id,
        entity=entity,
        lease_owner="me",
        mapping_version=version,
    )


def outcome(key: str, action: str, **extra) -> RecordOutcome:
    return RecordOutcome(
        key_text=key,
        key=[int(key)] if key.isdigit() else [key],
        action=action,
        uuid=destination_uuid("item", key),
        content_hash=f"hash-{key}",
        **extra,
    )


def commit(ports: ControlRunPorts, outcomes: list[RecordOutcome]) -> None:
    ports.commit_batch(
        BatchResult(entity="item", phase="upsert", last_change_id=1, outcomes=outcomes, seconds=0.1)
    )


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_the_control_commit_writes_the_map_and_one_event_per_record():
    ports = control_ports()
    earlier = RecordMapFactory(
        entity_type="item", legacy_key=[2], legacy_key_text="2", content_hash="old"
    )
    gone = RecordMapFactory(entity_type="item", legacy_key=["x/y"], legacy_key_text="x\\/y")
    outcomes = [
        outcome("1", "created"),
        outcome("2", "updated"),
        RecordOutcome(
            key_text="x\\/y",
            key=["x/y"],
            action="deleted",
            uuid=gone.destination_uuid,
            content_hash="",
        ),
        outcome("tab\there", "created", note="adopted\nby match_on"),
    ]
    commit(ports, outcomes)

    entries = {e.legacy_key_text: e for e in RecordMap.objects.filter(entity_type="item")}
    assert set(entries) == {"1", "2", "x\\/y", "tab\there"}
    assert (entries["1"].legacy_key, entries["1"].content_hash, entries["1"].mapping_version) == (
        [1],
        "hash-1",
        2,
    )
    assert entries["tab\there"].legacy_key == ["tab\there"]
    # An update keeps the record's UUID and first session; a delete only marks the entry.
    assert entries["2"].destination_uuid == earlier.destination_uuid
    assert (entries["2"].content_hash, entries["2"].first_session_id) == ("hash-2", None)
    assert entries["2"].last_session_id == ports.session_id
    assert entries["x\\/y"].deleted_at is not None
    events = list(
        RecordEvent.objects.order_by("legacy_key_text").values_list(
            "legacy_key_text", "action", "session_id", "mapping_version", "reason"
        )
    )
    assert events == [
        ("1", "created", ports.session_id, 2, ""),
        ("2", "updated", ports.session_id, 2, ""),
        ("tab\there", "created", ports.session_id, 2, "adopted\nby match_on"),
        ("x\\/y", "deleted", ports.session_id, 2, ""),
    ]
    assert MigrationControl.objects.get(pk=ports.control_id).processed_count == 4


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_a_record_created_twice_is_merged_into_its_map_entry():
    """ "Created" means the map had no entry when the batch looked; should one be there by
    the control commit all the same, the commit merges instead of failing the batch."""
    ports = control_ports()
    there = RecordMapFactory(entity_type="item", legacy_key=[5], legacy_key_text="5")
    commit(ports, [outcome("4", "created"), outcome("5", "created"), outcome("6", "created")])

    entries = dict(
        RecordMap.objects.filter(entity_type="item").values_list(
            "legacy_key_text", "destination_uuid"
        )
    )
    assert entries == {
        "4": destination_uuid("item", "4"),
        "5": there.destination_uuid,  # a UUID never changes once given
        "6": destination_uuid("item", "6"),
    }
    assert RecordMap.objects.get(legacy_key_text="5").content_hash == "hash-5"
    assert RecordEvent.objects.count() == 3


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_control_commit_runs_the_same_few_statements_whatever_the_batch_size():
    """The lease check carries the entity's counters; the checkpoint carries the stage
    seconds; the record map and the events are one COPY each: a fixed number of round
    trips per batch, 3 records or 3,000 (17 statements before, with two COPYs)."""
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    ports = EntityRunPorts(**vars(control_ports()))  # what a run uses: links, stage times
    statements = []
    # The first batch also creates the unit's checkpoint; the next ones only move it.
    for first, size in ((1, 3), (4, 3), (10, 3000)):
        batch = [outcome(str(k), "created") for k in range(first, first + size)]
        with CaptureQueriesContext(connection) as captured:
            ports.commit_batch(
                BatchResult(
                    entity="item",
                    phase="upsert",
                    last_change_id=first + size,
                    outcomes=batch,
                    seconds=0.1,
                )
            )
        statements.append([q["sql"].split()[0] for q in captured.captured_queries])
    _, small, large = statements
    assert small == large
    assert len(large) <= 12, large
    assert RecordMap.objects.filter(entity_type="item").count() == 3006
    control = MigrationControl.objects.get(pk=ports.control_id)
    assert control.processed_count == 3006


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_records_that_succeed_close_their_open_quarantine_entries():
    ports = control_ports()
    QuarantinedRecord.objects.create(
        entity_type="item", legacy_key=[8], legacy_key_text="8", rule="format", reason="bad"
    )
    QuarantinedRecord.objects.create(
        entity_type="other", legacy_key=[9], legacy_key_text="9", rule="format", reason="bad"
    )
    commit(ports, [outcome("8", "created"), outcome("9", "created")])
    assert {q.entity_type: q.resolved_at is None for q in QuarantinedRecord.objects.all()} == {
        "item": False,
        "other": True,
    }


# --- the indexes each lookup needs --------------------------------------------------------------


def plans(queries: list[dict]) -> list[str]:
    found = []
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            for query in queries:
                sql = query["sql"]
                if not sql.lstrip().upper().startswith("SELECT"):
                    continue
                cursor.execute("EXPLAIN " + sql)
                found.append("\n".join(row[0] for row in cursor.fetchall()))
        finally:
            cursor.execute("SET enable_seqscan = on")
    return found


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_every_lookup_of_the_map_and_the_events_is_served_by_an_index():
    if connection.vendor != "postgresql":
        pytest.skip("reads PostgreSQL's query plans")
    session = MigrationStatusFactory()
    with connection.cursor() as cursor:
        # Enough rows, over several entities, for the planner's estimates to mean something.
        cursor.execute(
            "INSERT INTO migration_mappings (entity_type, legacy_key, legacy_key_text, "
            "destination_uuid, content_hash, mapping_version, first_migrated_at, "
            "last_migrated_at, last_session_id) "
            "SELECT 'e' || (g %% 5), jsonb_build_array(g), g::text, md5(g::text)::uuid, '', 1, "
            "now(), now(), %s FROM generate_series(1, 20000) g",
            [session.migration_session_id],
        )
        cursor.execute(
            "INSERT INTO migration_record_events (entity_type, legacy_key_text, "
            "migration_session_id, action, content_hash, reason, occurred_at) "
            "SELECT 'e' || (g %% 5), g::text, %s, 'created', '', '', now() - g * interval '1 h' "
            "FROM generate_series(1, 20000) g",
            [session.migration_session_id],
        )
        cursor.execute("ANALYZE migration_mappings")
        cursor.execute("ANALYZE migration_record_events")
    ports = control_ports(entity="e1")
    verify_ports = ControlVerifyPorts()
    with CaptureQueriesContext(connection) as captured:
        record_history(entity="e1", key_text="11")
        similar_keys(entity="e1", key_text="11 ")
        ports.lookup_uuids("e1", ["11", "16"], include_deleted=False)
        verify_ports.entries_by_key("e1", ["11", "16"])
        verify_ports.entries_by_uuid("e1", [uuid.UUID(int=1)])
    tables = ("migration_mappings", "migration_record_events")
    read = [q for q in captured.captured_queries if any(t in q["sql"] for t in tables)]
    found = plans(read)
    assert len(found) >= 7
    for plan in found:
        # Served by an index's condition, not by a filter over a whole table or index.
        assert "Index Cond" in plan, plan
        assert "Seq Scan" not in plan, plan
