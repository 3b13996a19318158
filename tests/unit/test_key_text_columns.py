"""A batch's key texts taken a column at a time are encode_key's, key by key.

A batch's keys all have as many values (the entity's key columns): ``key_texts`` checks
each column against ``ids.plain_key_texts``'s rule at once and sends only a column holding
a value to escape (or of another type) through ``encode_key`` value by value. Keys of one
width, with plain columns, mixed ones and columns of other types, must give exactly
``encode_key``'s texts.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from migrationsapp.engine.ids import encode_key, plain_key_texts
from migrationsapp.engine.key_texts import key_texts, value_key_texts

# Values of one column: mostly plain, now and then one to escape or of another type.
PLAIN = st.one_of(st.integers(), st.text(alphabet="ab1 é😀", max_size=4))
ANY = st.one_of(
    PLAIN,
    st.sampled_from(["a/b", "a\\b", "/", "\\", ""]),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.dates(),
    st.floats(allow_nan=False),
)


@st.composite
def batches(draw) -> list[tuple]:
    """Keys of one width; each column drawn from plain values only, or from any value."""
    width = draw(st.integers(1, 3))
    count = draw(st.integers(0, 12))
    columns = [
        draw(st.lists(draw(st.sampled_from([PLAIN, ANY])), min_size=count, max_size=count))
        for _ in range(width)
    ]
    return list(zip(*columns, strict=True)) if count else []


@settings(max_examples=400, deadline=None)
@given(keys=batches())
def test_a_batchs_key_texts_by_column_are_encode_keys(keys):
    assert key_texts(keys) == [encode_key(list(key)) for key in keys]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(ANY, max_size=10))
def test_a_columns_texts_are_encode_keys_of_each_value(values):
    assert value_key_texts(values) == [encode_key([value]) for value in values]
    plain = plain_key_texts(values)
    assert plain is None or plain == [encode_key([value]) for value in values]


def test_a_column_is_plain_only_when_every_value_is():
    assert plain_key_texts([1007, "A-1", ""]) == ["1007", "A-1", ""]
    assert plain_key_texts([1, "a/b"]) is None
    assert plain_key_texts([1, True]) is None
    assert plain_key_texts([Decimal("1.5")]) is None
    assert plain_key_texts([]) is None
    assert key_texts([(dt.date(2024, 2, 29), "a/b"), (dt.date(2024, 3, 1), "c")]) == [
        "2024-02-29/a\\/b",
        "2024-03-01/c",
    ]
