"""RowColumns (engine/row_columns.py): a batch's rows a column at a time."""

from __future__ import annotations

import pytest

from migrationsapp.engine.row_columns import RowColumns, SourceRows

ROWS = [{"a": 1, "b": "x"}, {"a": 2, "b": None}, {"a": 3}]


def test_rows_become_columns_and_a_missing_value_is_null():
    batch = RowColumns.of_rows(ROWS, ["a", "b"])
    assert len(batch) == 3
    assert batch.values == [[1, 2, 3], ["x", None, None]]
    assert batch.column("b") == ["x", None, None]
    assert batch.column("not there") == [None, None, None]
    assert batch.row(1) == {"a": 2, "b": None}


def test_one_column_and_no_rows():
    assert RowColumns.of_rows(ROWS, ["a"]).values == [[1, 2, 3]]
    empty = RowColumns.of_rows([], ["a", "b"])
    assert len(empty) == 0 and empty.values == [[], []]


def test_take_picks_rows_in_order_and_keeps_the_lists_when_it_takes_them_all():
    batch = RowColumns(["a", "b"], [[1, 2, 3], ["x", "y", "z"]], 3)
    assert batch.take([0, 1, 2]) is batch
    assert batch.take([2, 0]).values == [[3, 1], ["z", "x"]]
    assert batch.take([1]).values == [[2], ["y"]]
    assert batch.take([]).values == [[], []]


def test_a_key_column_goes_first():
    batch = RowColumns(["a"], [[1, 2]], 2).with_first("id", ["k1", "k2"])
    assert batch.names == ["id", "a"]
    assert batch.row(0) == {"id": "k1", "a": 1}
    with pytest.raises(ValueError):
        RowColumns(["a"], [[1, 2]], 2).with_first("id", ["k1"])


def test_source_rows_give_columns_and_dicts_from_either_form():
    from_rows = SourceRows(ROWS[:2])
    from_columns = SourceRows(columns=RowColumns.of_rows(ROWS[:2], ["a", "b"]))
    for source in (from_rows, from_columns):
        assert len(source) == 2
        assert source.column("a") == [1, 2]
        assert list(source) == [{"a": 1, "b": "x"}, {"a": 2, "b": None}]
        assert source[1] == {"a": 2, "b": None}
        assert source.row(0) == {"a": 1, "b": "x"}
        with pytest.raises(KeyError):
            source.column("c")
    with pytest.raises(KeyError):  # a row without the column, as a dict would say
        SourceRows(ROWS).column("b")
    with pytest.raises(ValueError):
        SourceRows()
