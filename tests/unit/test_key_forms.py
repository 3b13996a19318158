"""A key's text and typed form taken at once (``ids.key_forms``, what an analysis stages for
every source row) are exactly ``encode_key`` and ``json.dumps(storage_values(...))``, on the
direct side of its rule (integers, text with nothing to escape) and on the general one."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrationsapp.engine.ids import encode_key, key_forms, storage_values

# Every kind of value a source key can hold, text with the separator, the escape and
# surrogates included.
VALUES = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.text(),
    st.text(alphabet="a/\\é\udc80 ", max_size=6),
    st.booleans(),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.dates(),
    st.datetimes(),
    st.binary(max_size=4),
)


def _general(key: tuple) -> tuple[str, str]:
    return encode_key(list(key)), json.dumps(storage_values(key))


@settings(max_examples=400, deadline=None)
@given(key=st.lists(VALUES, min_size=1, max_size=3).map(tuple))
def test_the_forms_of_any_key_are_those_of_encode_key_and_storage_values(key):
    assert key_forms(key) == _general(key)


@pytest.mark.parametrize(
    "key, text, typed",
    [
        # The direct side: integers and plain text.
        ((42,), "42", "[42]"),
        ((1007, 3), "1007/3", "[1007, 3]"),
        (("A-1", 7), "A-1/7", '["A-1", 7]'),
        (("Köln",), "Köln", '["K\\u00f6ln"]'),
        # The general side: a value to escape, a bool, a Decimal, a date.
        (("NEW/ 1,2",), "NEW\\/ 1,2", '["NEW/ 1,2"]'),
        (("a\\b", 1), "a\\\\b/1", '["a\\\\b", 1]'),
        ((True,), "1", "[true]"),
        ((Decimal("12.50"),), "12.50", '["12.50"]'),
        ((dt.date(2024, 7, 1), 2), "2024-07-01/2", '["2024-07-01", 2]'),
    ],
)
def test_a_key_has_one_text_and_one_typed_form_on_both_sides_of_the_rule(key, text, typed):
    assert key_forms(key) == (text, typed) == _general(key)


def test_an_empty_key_is_refused():
    with pytest.raises(ValueError):
        key_forms(())
