"""The vectorized path: which fields run on columns, which patterns polars may run, and that
the column forms do run (the property test compares their values with the row path's)."""

from __future__ import annotations

import datetime as dt
import sys

import pytest

from migrationsapp.engine.columnar_regex import rust_pattern
from migrationsapp.engine.columnar_types import PY_WHITESPACE
from migrationsapp.engine.errors import RowError
from migrationsapp.engine.mapping import FieldSpec
from tests.unit.columnar_entities import batch_path, build_entity, row_path


@pytest.mark.parametrize(
    ("pattern", "rust"),
    [
        (r"[^0-9]", r"[^0-9]"),
        (r"\d+-\w", r"[0-9]+\-[0-9A-Za-z_]"),
        (r"[\s,]+", r"[\t\n\f\r ,]+"),
        (r"(?P<last>\w+), (?P<first>\w+)", r"(?P<last>[0-9A-Za-z_]+), (?P<first>[0-9A-Za-z_]+)"),
        (r"a{2,3}\<", r"a{2,3}<"),
        (r"(?s)x.y", r"(?s)x.y"),
    ],
)
def test_patterns_both_engines_read_alike_are_rewritten_for_rust(pattern, rust):
    assert rust_pattern(pattern) == rust


@pytest.mark.parametrize(
    "pattern", [r"\b", r"\pL+", r"(?i)ß", r"(?m)^a", r"[[:alpha:]]", r"x*", r"a|", r"\x41", "a{,2}"]
)
def test_patterns_whose_meaning_may_differ_stay_on_re2(pattern):
    assert rust_pattern(pattern) is None


def fields(*pairs):
    return [FieldSpec(destination=f"f{i}", source="s", transform=t) for i, t in enumerate(pairs)]


def test_a_lone_trim_or_title_and_a_plain_column_stay_row_wise_the_rest_runs_on_columns():
    compiled = build_entity(
        [
            *fields("trim", "upper(trim(value))", "legacy_date", "title"),
            FieldSpec(destination="plain", source="s"),
            FieldSpec(destination="flag", expression="'yes' if n > 3 else 'no'"),
        ],
        every_field=False,
    )
    assert compiled.columnar is not None
    assert compiled.columnar.positions == {1, 2, 5}
    rows = [{"id": 1, "s": " 2021-3-7 ", "n": 5}, {"id": 2, "s": "x", "n": 1}]
    columns = compiled.columnar.evaluate(rows)
    assert columns is not None
    assert sorted(columns.values) == [1, 2, 5]
    assert columns.values[2] == [dt.date(2021, 3, 7), None]
    assert columns.unsure[2] == [False, True]  # 'x' is not a date: the row path says why
    results = compiled.transform_batch(rows)
    assert results[0]["f2"] == dt.date(2021, 3, 7) and results[0]["flag"] == "yes"
    assert isinstance(results[1], RowError)
    assert results[1].field == "f2" and results[1].reason.startswith("legacy_date: 'x'")


def test_a_column_with_text_polars_cannot_hold_runs_row_wise():
    compiled = build_entity(fields("regex_replace(value, r'[0-9]', '#')"))
    rows = [{"id": 1, "s": "a1"}, {"id": 2, "s": "b2\ud800"}]
    assert compiled.columnar is not None
    assert compiled.columnar.evaluate(rows) is None
    assert batch_path(compiled, rows) == row_path(compiled, rows)
    assert compiled.transform_batch(rows[:1]) == [{"f0": "a#"}]


def test_the_first_failing_field_of_a_row_is_its_error_as_row_by_row():
    compiled = build_entity(
        [
            FieldSpec(destination="a", source="s", transform="to_int", required=True),
            FieldSpec(destination="b", source="s", transform="legacy_date"),
        ],
        kinds={"a": "integer", "b": "date"},
    )
    rows = [{"id": 1, "s": "12"}, {"id": 2, "s": " "}, {"id": 3, "s": "nope"}]
    assert batch_path(compiled, rows) == row_path(compiled, rows)
    results = compiled.transform_batch(rows)
    assert (results[0].field, results[0].rule) == ("b", "transform")  # '12' is no date
    assert (results[1].field, results[1].rule) == ("a", "transform")  # to_int(' ') fails first
    assert (results[2].field, results[2].rule) == ("a", "transform")


def test_the_whitespace_the_column_forms_strip_is_pythons():
    scanned = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
    assert scanned == PY_WHITESPACE


def test_title_runs_on_ascii_text_and_leaves_other_text_to_the_row_path():
    compiled = build_entity(fields("title"))
    rows = [{"id": 1, "s": "o'brien mc-DOWELL 2nd"}, {"id": 2, "s": "ǆemal ÉCOLE"}, {"id": 3}]
    rows[2]["s"] = None
    columns = compiled.columnar.evaluate(rows)
    assert columns is not None
    assert columns.values[0][0] == "O'Brien Mc-Dowell 2Nd"
    assert columns.unsure[0] == [False, True, False]
    assert compiled.transform_batch(rows) == [
        {"f0": "O'Brien Mc-Dowell 2Nd"},
        {"f0": "ǅemal École"},
        {"f0": None},
    ]
