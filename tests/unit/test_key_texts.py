"""A batch's key texts and UUIDs are engine.ids's, whatever the key's values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrationsapp.engine.ids import destination_uuid, encode_key
from migrationsapp.engine.key_texts import DestinationUUIDs, key_text, key_texts, value_key_text

VALUES = st.one_of(
    st.integers(),
    st.booleans(),
    st.text(),
    st.sampled_from(["a/b", "a\\b", "/", "\\", "", "x\\/y", "😀/"]),
    st.dates(),
    st.datetimes(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.binary(max_size=4),
    st.floats(allow_nan=False),
)
PLAIN = st.one_of(st.integers(), st.text(alphabet="ab/\\1 "))
KEYS = st.one_of(
    st.lists(VALUES, min_size=1, max_size=3), st.lists(PLAIN, min_size=1, max_size=3)
).map(tuple)


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(KEYS, max_size=8))
def test_key_texts_are_encode_keys(keys):
    assert key_texts(keys) == [encode_key(list(key)) for key in keys]


@settings(max_examples=300, deadline=None)
@given(value=VALUES)
def test_a_one_value_key_text_is_encode_keys(value):
    assert value_key_text(value) == key_text((value,)) == encode_key([value])


@settings(max_examples=200, deadline=None)
@given(entity=st.text(min_size=1), texts=st.lists(st.text(), max_size=6))
def test_destination_uuids_are_uuid5_of_the_entity_and_key(entity, texts):
    uuids = DestinationUUIDs(entity)
    assert [uuids(text) for text in texts] == [destination_uuid(entity, text) for text in texts]


def test_a_key_without_values_is_refused_as_encode_key_refuses_it():
    with pytest.raises(ValueError, match="at least one value"):
        key_text(())


def test_keys_that_need_escaping_or_have_no_plain_text_take_encode_key():
    assert key_texts([(True,), ("a/b",), (Decimal("12.50"),), (dt.date(2024, 2, 29), 3)]) == [
        "1",
        "a\\/b",
        "12.50",
        "2024-02-29/3",
    ]
    texts = key_texts([(1007, 3), ("NEW/ 1,2", 4), (5, "a\\b")])
    assert texts == ["1007/3", "NEW\\/ 1,2/4", "5/a\\\\b"]
