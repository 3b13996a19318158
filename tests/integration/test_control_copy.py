"""The binary COPY of control rows stores exactly what the text COPY stores.

The record map and the record events go to PostgreSQL in the binary format
(``services.control_copy``); the text format (``services.bulk``) stays for the other
control rows. On random keys, reasons, JSON keys and changed fields (COPY's special
characters, 4-byte characters, empty text, NULLs) the two store the same rows, and a NUL
byte fails both the same way, before anything is written.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrationsapp.engine.copy_text import NUL_REASON, Same
from migrationsapp.models import RecordEvent, RecordMap
from migrationsapp.services.bulk import copy_columns
from migrationsapp.services.control_copy import copy_binary
from migrationsapp.services.record_writes import (
    EVENT_COLUMNS,
    EVENT_COPY_TYPES,
    MAP_COLUMNS,
    MAP_COPY_TYPES,
    key_json,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# Text PostgreSQL can hold: any character but NUL, the COPY specials more often.
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("\\\t\n\r \"'{}[],:é😀"),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    ),
    max_size=12,
)
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), TEXT, st.floats(-1e9, 1e9)
)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)
KEY = st.lists(st.one_of(st.integers(-(2**40), 2**40), TEXT), min_size=1, max_size=3)
AT = dt.datetime(2026, 12, 7, 12, 30, 1, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-3)))


def skip_unless_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")


def event_columns(entity: str, rows: list[tuple], session: uuid.UUID) -> list:
    return [
        Same(entity),
        [r[0] for r in rows],
        Same(session),
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        Same(3),
        [r[4] for r in rows],
        Same(AT),
        [r[5] for r in rows],
    ]


def stored_events(entity: str) -> list[tuple]:
    return list(
        RecordEvent.objects.filter(entity_type=entity)
        .order_by("id")
        .values_list(
            *[c for c in EVENT_COLUMNS if c not in ("entity_type", "migration_session_id")]
        )
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            TEXT,
            st.sampled_from(["created", "updated", "failed"]),
            st.one_of(st.none(), st.uuids()),
            st.text(alphabet="0123456789abcdef", max_size=64),
            TEXT,
            st.one_of(st.none(), st.dictionaries(TEXT, st.lists(JSON, max_size=2), max_size=3)),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_events_copied_in_binary_are_stored_as_in_text(rows):
    skip_unless_postgresql()
    session = uuid.uuid4()
    with transaction.atomic():
        copy_columns(
            "migration_record_events",
            EVENT_COLUMNS,
            event_columns("by-text", rows, session),
            count=len(rows),
            json_columns=frozenset({"changes"}),
        )
        copy_binary(
            "migration_record_events",
            EVENT_COLUMNS,
            EVENT_COPY_TYPES,
            event_columns("by-binary", rows, session),
            count=len(rows),
        )
        by_text, by_binary = stored_events("by-text"), stored_events("by-binary")
        transaction.set_rollback(True)
    assert by_binary == by_text
    assert [r[0] for r in by_binary] == [r[0] for r in rows]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(keys=st.lists(KEY, min_size=1, max_size=8, unique_by=lambda k: repr(k)))
def test_record_map_entries_copied_in_binary_are_stored_as_in_text(keys):
    skip_unless_postgresql()
    session = uuid.uuid4()

    def columns(entity: str) -> list:
        return [
            Same(entity),
            key_json(keys),
            [repr(k) for k in keys],
            [uuid.uuid5(uuid.NAMESPACE_URL, repr(k)) for k in keys],
            [f"{i:x}" for i in range(len(keys))],
            Same(2),
            Same(session),
            Same(session),
            Same(AT),
            Same(AT),
        ]

    def stored(entity: str) -> list[tuple]:
        return list(
            RecordMap.objects.filter(entity_type=entity)
            .order_by("id")
            .values_list(*[c for c in MAP_COLUMNS if c not in ("entity_type",)])
        )

    with transaction.atomic():
        copy_columns(
            "migration_mappings",
            MAP_COLUMNS,
            columns("by-text"),
            count=len(keys),
            json_columns=frozenset({"legacy_key"}),
        )
        copy_binary(
            "migration_mappings", MAP_COLUMNS, MAP_COPY_TYPES, columns("by-binary"), count=len(keys)
        )
        by_text, by_binary = stored("by-text"), stored("by-binary")
        transaction.set_rollback(True)
    assert by_binary == by_text
    assert [entry[0] for entry in by_binary] == keys


def test_a_nul_byte_fails_the_copy_naming_its_row_and_column_before_writing():
    skip_unless_postgresql()
    rows = [("fine", "created", None, "", "", None), ("a\x00b", "created", None, "", "", None)]
    with pytest.raises(ValueError) as raised:
        copy_binary(
            "migration_record_events",
            EVENT_COLUMNS,
            EVENT_COPY_TYPES,
            event_columns("nul", rows, uuid.uuid4()),
            count=2,
        )
    assert str(raised.value) == (
        f"migration_record_events: row 2, column legacy_key_text: {NUL_REASON}"
    )
    assert not RecordEvent.objects.filter(entity_type="nul").exists()


@pytest.mark.embedded
@given(
    keys=st.lists(st.lists(st.one_of(st.integers(), st.booleans(), TEXT), min_size=1, max_size=3))
)
def test_keys_are_written_as_their_json(keys):
    """Keys of integers take a shortcut; every key reads back as itself."""
    import json

    assert [json.loads(text) for text in key_json(keys)] == keys
    assert key_json(keys) == [json.dumps(k) for k in keys]
