"""validate_batch gives validate_row's error for every row, on random rules and values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from migrationsapp.engine.row_columns import RowColumns
from migrationsapp.engine.validation import (
    RuleSpec,
    compile_rules,
    validate_batch,
    validate_columns,
    validate_row,
)

FIELDS = ("a", "b", "c")
TODAY = dt.date(2026, 12, 7)
VALUES = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "\t\u3000", "ada@example.org", "not an email", "😀@x.io", "x\x00y"]),
    st.text(max_size=6),
    st.integers(-5, 2000),
    st.booleans(),
    st.decimals(min_value=-10, max_value=10, allow_nan=False, places=2),
    st.floats(allow_nan=False, allow_infinity=False),
    st.dates(min_value=dt.date(1890, 1, 1), max_value=dt.date(2030, 1, 1)),
    st.datetimes(min_value=dt.datetime(1890, 1, 1), max_value=dt.datetime(2030, 1, 1)),
    st.just("bad \ud800"),
)
RULES = st.sampled_from(
    [
        ("required", {}),
        ("unique", {}),
        ("format", {"pattern": "email"}),
        ("format", {"pattern": r"[a-z]+\d*"}),
        ("range", {"min": 0, "max": 100}),
        ("range", {"min": Decimal("0.5")}),
        ("range", {"min": "1900-01-01", "max": "today"}),
        ("range", {"max": "2000-01-01"}),
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    specs=st.lists(st.tuples(st.sampled_from(FIELDS), RULES), max_size=5),
    rows=st.lists(st.dictionaries(st.sampled_from(FIELDS), VALUES), max_size=10),
)
def test_a_batch_fails_each_row_with_its_first_broken_rule(specs, rows):
    rules = compile_rules(
        "thing", [RuleSpec(field, rule, params) for field, (rule, params) in specs], FIELDS
    )
    expected = [validate_row(rules, row, today=TODAY) for row in rows]
    got = validate_batch(rules, rows, today=TODAY)
    assert [_shown(e) for e in got] == [_shown(e) for e in expected]


def _shown(error):
    if error is None:
        return None
    return (error.field, error.rule, error.reason, repr(error.value))


def test_required_fails_none_and_whitespace_only_and_the_first_rule_wins():
    rules = compile_rules(
        "thing",
        [RuleSpec("a", "required"), RuleSpec("b", "range", {"min": 1})],
        FIELDS,
    )
    rows = [{"a": None, "b": 0}, {"a": " \t", "b": 5}, {"a": "x", "b": 0}, {"a": "y", "b": 2}]
    errors = validate_batch(rules, rows, today=TODAY)
    assert [(e.field, e.reason) if e else None for e in errors] == [
        ("a", "required: a has no value"),
        ("a", "required: a is empty (' \\t')"),
        ("b", "range: 0 is below min 1"),
        None,
    ]


@settings(max_examples=100, deadline=None)
@given(
    specs=st.lists(st.tuples(st.sampled_from(FIELDS), RULES), max_size=5),
    rows=st.lists(st.dictionaries(st.sampled_from(FIELDS), VALUES), max_size=10),
    picked=st.lists(st.booleans(), min_size=10, max_size=10),
)
def test_columns_checked_at_some_rows_fail_those_rows_as_row_by_row(specs, rows, picked):
    rules = compile_rules(
        "thing", [RuleSpec(field, rule, params) for field, (rule, params) in specs], FIELDS
    )
    indexes = [index for index in range(len(rows)) if picked[index]]
    batch = RowColumns.of_rows(rows, FIELDS)
    found = validate_columns(rules, batch, indexes, today=TODAY)
    assert set(found) <= set(indexes)
    for index in indexes:
        expected = validate_row(rules, rows[index], today=TODAY)
        assert _shown(found.get(index)) == _shown(expected)
