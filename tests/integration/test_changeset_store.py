"""The change-set store on PostgreSQL.

Hash detection's change set is written by one statement (a full join of the stage and the
record map); every other analysis by two (upserts, then deletes). Both write the same
changes, kinds and id order, on random record maps, quarantines and sources. A batch of
source keys is staged as one block of COPY text when nothing in it needs escaping, else row
by row: both stage the same values."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrationsapp.models import AnalysisChange, QuarantinedRecord, RecordMap
from migrationsapp.services.changeset import STAGE, ControlChangeSetStore, copy_text
from tests.factories import (
    DifferentialAnalysisResultFactory,
    QuarantinedRecordFactory,
    RecordMapFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.services]

ENTITY = "item"
# Keys whose text order is not their numeric order, and text beyond ASCII.
KEYS = ["1", "2", "9", "10", "a", "B", "é", "a b"]
HASHES = st.sampled_from(["h1", "h2"])
VERSIONS = st.sampled_from([1, 2])


@st.composite
def scenarios(draw):
    rows = []
    for key in KEYS:
        rows.append(
            {
                "key": key,
                "source": draw(st.none() | HASHES),
                "map": draw(st.none() | st.tuples(HASHES, VERSIONS, st.booleans())),
                "quarantine": draw(st.none() | st.tuples(HASHES, VERSIONS)),
            }
        )
    return rows, draw(st.booleans())


def _prepare(rows) -> list[tuple[str, str, str]]:
    RecordMap.objects.filter(entity_type=ENTITY).delete()
    QuarantinedRecord.objects.filter(entity_type=ENTITY).delete()
    for row in rows:
        if row["map"]:
            content_hash, version, deleted = row["map"]
            RecordMapFactory(
                entity_type=ENTITY,
                legacy_key=[row["key"]],
                content_hash=content_hash,
                mapping_version=version,
                deleted_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC) if deleted else None,
            )
        if row["quarantine"]:
            content_hash, version = row["quarantine"]
            QuarantinedRecordFactory(
                entity_type=ENTITY,
                legacy_key=[row["key"]],
                content_hash=content_hash,
                mapping_version=version,
            )
    return [(r["key"], f'["{r["key"]}"]', r["source"]) for r in rows if r["source"]]


def _change_set(staged, write) -> tuple[list[tuple], dict[str, int] | None]:
    result = DifferentialAnalysisResultFactory(entity_type=ENTITY)
    store = ControlChangeSetStore(analysis_id=result.id, entity=ENTITY)
    store.add_source(staged)
    counts = write(store, result.id)
    changes = list(
        AnalysisChange.objects.filter(analysis=result)
        .order_by("id")
        .values_list("kind", "legacy_key", "legacy_key_text", "content_hash")
    )
    return changes, counts


@pytest.fixture
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement change set is PostgreSQL's")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario=scenarios())
def test_one_statement_writes_what_the_two_statements_write(postgresql_only, scenario):
    rows, baseline = scenario
    staged = _prepare(rows)

    def classify(store, _analysis_id):
        # The rule's one-statement side: hash detection (the stage holds every source key).
        return store.classify(baseline=baseline, mapping_version=1).as_dict()

    def two_statements(store, analysis_id):
        with connection.cursor() as cursor:
            store._write_upserts(cursor, analysis_id, baseline, 1)
            store._write_deletes(cursor, analysis_id, STAGE)

    one, counts = _change_set(staged, classify)
    two, _ = _change_set(staged, two_statements)
    assert one == two
    kinds = [kind for kind, *_ in one]
    # The upserts by key first, then the deletes by key: the id order partitions cut.
    assert kinds == sorted(kinds, key=lambda kind: kind == "deleted")
    assert {k: kinds.count(k) for k in ("new", "modified", "deleted", "retry")} == {
        k: counts[k] for k in ("new", "modified", "deleted", "retry")
    }


def test_a_source_row_count_is_what_was_staged(postgresql_only):
    staged = _prepare([{"key": k, "source": "h1", "map": None, "quarantine": None} for k in KEYS])
    _, counts = _change_set(
        staged,
        lambda store, _id: store.classify(baseline=False, mapping_version=1),
    )
    assert (counts.source_count, counts.new, counts.unchanged) == (len(KEYS), len(KEYS), 0)


PLAIN = [("42", "[42]", "a" * 32), ("1007/3", "[1007, 3]", "b" * 32), ("A-1", '["A-1"]', "c" * 32)]
# Each needs COPY's escapes: a backslash (JSON's \\u escape of text beyond ASCII, the key's
# own escape), a tab, a newline, a carriage return.
ESCAPED = [
    ("Köln", '["K\\u00f6ln"]', "1" * 32),
    ("NEW\\/ 1", '["NEW/ 1"]', "d" * 32),
    ("tab\there", '["tab\\there"]', "e" * 32),
    ("line\nbreak", '["line\\nbreak"]', "f" * 32),
    ("cr\rhere", '["cr\\rhere"]', "0" * 32),
]


def test_only_a_batch_without_characters_to_escape_is_one_block():
    expected = "".join(f"{a}\t{b}\t{c}\t{seq}\n" for seq, (a, b, c) in enumerate(PLAIN, 40))
    assert copy_text(PLAIN, 40) == expected
    for row in ESCAPED:
        assert copy_text([*PLAIN, row]) is None


@pytest.mark.parametrize("rows", [PLAIN, PLAIN + ESCAPED], ids=["block", "row by row"])
def test_a_batch_is_staged_as_given_whichever_way_it_is_written(postgresql_only, rows):
    result = DifferentialAnalysisResultFactory(entity_type=ENTITY)
    store = ControlChangeSetStore(analysis_id=result.id, entity=ENTITY)
    store.add_source(rows)
    store.add_source(rows[:1])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key_text, key_json, hash, seq FROM {STAGE} ORDER BY seq")
        staged = cursor.fetchall()
    # Each row with its place in the stream, the second call's after the first's.
    assert staged == [(*row, seq) for seq, row in enumerate([*rows, rows[0]])]
    assert store.staged == len(rows) + 1


@pytest.mark.parametrize("one_statement", [True, False], ids=["one statement", "two"])
def test_the_upserts_follow_the_order_the_source_returned_them_in(one_statement):
    """Integer keys streamed 1, 2, 9, 10 (the source's key order) stay in that order, not in
    their texts' ('1', '10', '2', '9'): a batch of them is a dense range, read as one."""
    staged = _prepare(
        [{"key": k, "source": "h1", "map": None, "quarantine": None} for k in KEYS[:4]]
        + [{"key": "gone", "source": None, "map": ("h1", 1, False), "quarantine": None}]
    )

    def write(store, analysis_id):
        if one_statement and connection.vendor == "postgresql":
            return store.classify(baseline=False, mapping_version=1)
        with connection.cursor() as cursor:
            store.index_stage()
            analysis = analysis_id if connection.vendor == "postgresql" else analysis_id.hex
            store._write_upserts(cursor, analysis, False, 1)
            store._write_deletes(cursor, analysis, store.stage)

    changes, _ = _change_set(staged, write)
    assert [(kind, text) for kind, _key, text, _hash in changes] == [
        ("new", "1"),
        ("new", "2"),
        ("new", "9"),
        ("new", "10"),
        ("deleted", "gone"),
    ]
