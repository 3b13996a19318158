"""verify's batch comparison: a column at a time, it finds exactly the differences the record
by record comparison finds, record by record and in the same order.

The batches are random rows of every column kind (``test_verify_compare``'s strategies: NULL
on either side, the same value, an equivalent value of another form, a different one; NaN,
infinities, Decimals of other scales, instants in other zones, naive timestamps, 4-byte and
trailing-space text, JSON whose Python equality is not the document's), with refused rows
(RowError), unresolved references, soft-deleted rows, and records the comparer settles by
their own way (a signalling NaN, a record without a column).

``DIFFMIG_HYPOTHESIS_PROFILE=big`` runs 200 examples instead of 25.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from migrationsapp.engine.errors import RowError
from migrationsapp.engine.introspect import ColumnInfo
from migrationsapp.engine.values import UnresolvedReference
from migrationsapp.engine.verify_compare import RowComparer
from tests.unit.test_verify_compare import COLUMNS, SETTINGS, rows

SOFT = "deleted_at"


def _reference(comparer: RowComparer, keys, values, read) -> dict[int, list]:
    """What ``differences`` finds, record by record."""
    found = {}
    for position, (key, record, row) in enumerate(zip(keys, values, read, strict=True)):
        differences = comparer.differences(key, record, row)
        if differences:
            found[position] = differences
    return found


def _as_tuples(comparer: RowComparer, read) -> list[tuple]:
    return [tuple(row.get(name) for name in comparer.row_columns) for row in read]


@st.composite
def batches(draw):
    """(values, destination rows as dicts) of one batch; a few refused rows. In half the
    batches most rows hold their record's very values, so that whole columns are equal."""
    pairs = draw(st.lists(rows(), max_size=60))
    equal_share = draw(st.sampled_from([0, 0.9, 1]))
    values, read = [], []
    for record, row in pairs:
        if draw(st.floats(0, 1, exclude_max=True)) < equal_share:
            # A destination holds no unresolved reference: a parent's UUID instead.
            row = {
                name: uuid.UUID(int=3) if isinstance(value, UnresolvedReference) else value
                for name, value in record.items()
            }
        elif draw(st.integers(0, 19)) == 0:
            record = RowError("too long", field=draw(st.sampled_from([None, "label"])))
        values.append(record)
        read.append(row)
    return values, read


@SETTINGS
@given(batches(), st.sampled_from([None, SOFT]), st.data())
def test_the_batch_finds_exactly_the_differences_of_each_record(batch, soft, data):
    values, read = batch
    comparer = RowComparer(COLUMNS, soft)
    if soft:
        for row in read:
            row[soft] = data.draw(st.sampled_from([None, None, dt.datetime(2024, 1, 1)]))
    keys = [f"k/{i}" for i in range(len(values))]
    expected = _reference(comparer, keys, values, read)
    assert comparer.batch_differences(keys, values, _as_tuples(comparer, read)) == expected


def test_an_equal_batch_has_no_difference_and_a_changed_field_is_found_in_its_record():
    comparer = RowComparer(COLUMNS, None)
    record = {
        "n_int": 7,
        "n_dec": Decimal("85000.50"),
        "label": "Ada 😀",
        "at_tz": dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC),
        "day": dt.date(2024, 3, 1),
    }
    values = [dict(record) for _ in range(5)]
    read = [dict(record) for _ in range(5)]
    read[3]["label"] = "Ada 😀 "
    read[4]["n_dec"] = Decimal("85000.5")  # another scale of the same number: equal
    keys = [str(i) for i in range(5)]
    found = comparer.batch_differences(keys, values, _as_tuples(comparer, read))
    assert list(found) == [3]
    assert [(d.key, d.field, d.source, d.destination) for d in found[3]] == [
        ("3", "label", "Ada 😀", "Ada 😀 ")
    ]


def test_nan_is_a_difference_even_when_both_sides_hold_the_same_object():
    comparer = RowComparer(COLUMNS, None)
    nan = float("nan")
    quiet = Decimal("NaN")
    values = [{"f_double": nan}, {"n_dec": quiet}, {"n_dec": Decimal("sNaN")}]
    read = [{"f_double": nan}, {"n_dec": quiet}, {"n_dec": Decimal("sNaN")}]
    keys = ["a", "b", "c"]
    expected = _reference(comparer, keys, values, read)
    assert set(expected) == {0, 1, 2}
    assert comparer.batch_differences(keys, values, _as_tuples(comparer, read)) == expected


def test_a_record_without_a_column_reads_it_as_null():
    columns = {
        "a": ColumnInfo("a", "integer", "BIGINT", True, False, False, None),
        "b": ColumnInfo("b", "text", "TEXT", True, False, False, None),
    }
    comparer = RowComparer(columns, None)
    values = [{"a": 1}, {"a": 2, "b": "x"}, {"a": 3}]
    read = [{"a": 1, "b": None}, {"a": 2, "b": "x"}, {"a": 3, "b": "y"}]
    keys = ["1", "2", "3"]
    found = comparer.batch_differences(keys, values, _as_tuples(comparer, read))
    assert found == _reference(comparer, keys, values, read)
    assert [(d.field, d.source, d.destination) for d in found[2]] == [("b", None, "y")]


def test_an_empty_batch_and_a_batch_of_refused_rows():
    comparer = RowComparer(COLUMNS, SOFT)
    assert comparer.batch_differences([], [], []) == {}
    values = [RowError("bad", field="label"), RowError("bad")]
    read = [{"label": "x", SOFT: None}, {SOFT: dt.datetime(2024, 1, 1)}]
    found = comparer.batch_differences(["1", "2"], values, _as_tuples(comparer, read))
    assert found == _reference(comparer, ["1", "2"], values, read)
    assert [d.source for d in found[0]] == ["<fails: bad>"]
    assert set(found) == {0, 1}
