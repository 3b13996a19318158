"""Validation rules on destination values: required, unique, format, range."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from migrationsapp.engine.errors import MappingError, MappingProblem, RowError
from migrationsapp.engine.validation import (
    CompiledRule,
    RuleSpec,
    batch_unique_violations,
    compile_rules,
    unique_rules,
    validate_row,
)

TODAY = dt.date(2026, 11, 28)
FIELDS = ("email", "full_name", "age", "born_on", "seen_at", "code")


def rules(*specs: RuleSpec) -> list[CompiledRule]:
    return compile_rules("doctor", specs, FIELDS)


def check(spec: RuleSpec, value: Any) -> str | None:
    (rule,) = rules(spec)
    return rule.check(value, TODAY)


def problems(*specs: RuleSpec) -> list[MappingProblem]:
    with pytest.raises(MappingError) as caught:
        compile_rules("doctor", specs, FIELDS)
    return caught.value.problems


def problem(field: str, reason: str) -> MappingProblem:
    return MappingProblem(entity="doctor", field=field, reason=reason)


# --- compile_rules ----------------------------------------------------------------------------


def test_compile_rules_keeps_order_field_rule_and_params() -> None:
    compiled = rules(
        RuleSpec("email", "format", {"pattern": "email"}),
        RuleSpec("full_name", "required"),
        RuleSpec("email", "unique"),
    )
    assert [(r.field, r.rule, dict(r.params)) for r in compiled] == [
        ("email", "format", {"pattern": "email"}),
        ("full_name", "required", {}),
        ("email", "unique", {}),
    ]


def test_compile_rules_lists_every_problem_at_once() -> None:
    found = problems(
        RuleSpec("email", "checksum"),
        RuleSpec("nickname", "required"),
        RuleSpec("code", "format"),
        RuleSpec("code", "format", {"pattern": "([a-z"}),
        RuleSpec("age", "range"),
        RuleSpec("age", "range", {"min": "old"}),
        RuleSpec("age", "range", {"max": True}),
    )
    assert found == [
        problem(
            "email", "unknown rule 'checksum'; expected one of required, unique, format, range"
        ),
        problem("nickname", "required: 'nickname' is not a destination field of this entity"),
        problem("code", "format needs a `pattern`: a regular expression or the name 'email'"),
        problem(
            "code",
            "format: the pattern '([a-z' is refused: missing ] at '[a-z' (RE2 syntax)",
        ),
        problem("age", "range needs `min`, `max` or both"),
        problem("age", "range: min 'old' is neither a number, an ISO date nor 'today'"),
        problem("age", "range: max True is neither a number, an ISO date nor 'today'"),
    ]
    message = str(MappingError(found))
    assert message.splitlines()[0] == (
        "entity 'doctor', field 'email': unknown rule 'checksum'; "
        "expected one of required, unique, format, range"
    )


def test_compile_rules_refuses_unknown_params_and_inconsistent_bounds() -> None:
    assert problems(
        RuleSpec("code", "format", {"patern": "x", "pattern": "x"}),
        RuleSpec("age", "range", {"min": 10, "max": 5}),
        RuleSpec("born_on", "range", {"min": 1, "max": "today"}),
        RuleSpec("code", "required", ["x"]),  # type: ignore[arg-type]
    ) == [
        problem("code", "format: unknown parameter patern"),
        problem("age", "range: min 10 is greater than max 5"),
        problem("born_on", "range: min and max must both be numbers or both be dates"),
        problem("code", "required: params must be a mapping, not ['x']"),
    ]


def test_compile_rules_accepts_numbers_iso_dates_dates_and_today_as_bounds() -> None:
    compiled = rules(
        RuleSpec("age", "range", {"min": 0, "max": Decimal("150.5")}),
        RuleSpec("born_on", "range", {"min": "1900-01-01", "max": "today"}),
        RuleSpec("seen_at", "range", {"min": dt.date(2000, 1, 1), "max": "TODAY"}),
        RuleSpec("age", "range", {"min": 0.5}),
    )
    assert len(compiled) == 4


# --- required ---------------------------------------------------------------------------------


def test_required_refuses_none_and_blank_text() -> None:
    spec = RuleSpec("full_name", "required")
    assert check(spec, None) == "required: full_name has no value"
    assert check(spec, "") == "required: full_name is empty ('')"
    assert check(spec, " \t") == "required: full_name is empty (' \\t')"
    assert check(spec, "Ada") is None
    assert check(spec, 0) is None
    assert check(spec, False) is None


# --- format -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["bob@example.com", "a.b+tag@mail.example.co.uk", "x_y@sub-domain.example.org", "A@B.IO"],
)
def test_format_email_accepts_ordinary_addresses(address: str) -> None:
    assert check(RuleSpec("email", "format", {"pattern": "email"}), address) is None


@pytest.mark.parametrize(
    "address",
    ["bob@", "@example.com", "bob", "bob@example", "bob@@example.com", "bob @example.com",
     "bob@example.c", ".bob@example.com", "bob..x@example.com", "bob@-example.com"],
)  # fmt: skip
def test_format_email_refuses_malformed_addresses(address: str) -> None:
    reason = check(RuleSpec("email", "format", {"pattern": "email"}), address)
    assert reason == f"format: {address!r} is not a valid email"


def test_format_with_a_regex_matches_the_whole_value() -> None:
    spec = RuleSpec("code", "format", {"pattern": "[A-Z]{2}[0-9]{3}"})
    assert check(spec, "AB123") is None
    assert check(spec, "AB1234") == "format: 'AB1234' does not match the pattern '[A-Z]{2}[0-9]{3}'"
    assert check(spec, None) is None
    assert check(RuleSpec("code", "format", {"pattern": "[0-9]+"}), 42) is None


# --- range ------------------------------------------------------------------------------------


def test_range_on_numbers_is_inclusive() -> None:
    spec = RuleSpec("age", "range", {"min": 0, "max": 120})
    assert check(spec, 0) is None
    assert check(spec, 120) is None
    assert check(spec, Decimal("60.5")) is None
    assert check(spec, 120.5) == "range: 120.5 is above max 120"
    assert check(spec, -1) == "range: -1 is below min 0"
    assert check(spec, None) is None
    assert check(spec, "12") == "range: '12' is not a number"
    assert check(spec, True) == "range: True is not a number"


def test_range_on_dates_understands_today() -> None:
    spec = RuleSpec("born_on", "range", {"min": "1900-01-01", "max": "today"})
    assert check(spec, TODAY) is None
    assert check(spec, dt.date(1900, 1, 1)) is None
    assert check(spec, dt.date(2031, 1, 1)) == "range: 2031-01-01 is after max today (2026-11-28)"
    assert check(spec, dt.date(1899, 12, 31)) == "range: 1899-12-31 is before min 1900-01-01"
    assert check(spec, "2020-01-01") == "range: '2020-01-01' is not a date"
    assert check(spec, None) is None


def test_range_compares_a_datetime_by_its_day() -> None:
    spec = RuleSpec("seen_at", "range", {"max": "today"})
    assert check(spec, dt.datetime(2026, 11, 28, 23, 59)) is None
    assert check(spec, dt.datetime(2026, 11, 29, 0, 0)) == (
        "range: 2026-11-29T00:00:00 is after max today (2026-11-28)"
    )


def test_range_today_follows_the_day_given() -> None:
    (rule,) = rules(RuleSpec("born_on", "range", {"max": "today"}))
    assert rule.check(dt.date(2027, 1, 1), TODAY) is not None
    assert rule.check(dt.date(2027, 1, 1), dt.date(2027, 1, 1)) is None


# --- validate_row -----------------------------------------------------------------------------


def test_validate_row_returns_the_first_failing_rule_as_a_row_error() -> None:
    compiled = rules(
        RuleSpec("email", "unique"),
        RuleSpec("full_name", "required"),
        RuleSpec("email", "format", {"pattern": "email"}),
    )
    error = validate_row(compiled, {"email": "bob@", "full_name": ""}, today=TODAY)
    assert isinstance(error, RowError)
    assert (error.reason, error.field, error.rule, error.value) == (
        "required: full_name is empty ('')", "full_name", "required", "",
    )  # fmt: skip
    error = validate_row(compiled, {"email": "bob@", "full_name": "Bob"}, today=TODAY)
    assert error is not None
    assert str(error) == "field 'email': format: 'bob@' is not a valid email"
    assert error.rule == "format"
    assert validate_row(compiled, {"email": "bob@x.org", "full_name": "Bob"}, today=TODAY) is None


def test_validate_row_treats_a_missing_field_as_none() -> None:
    error = validate_row(rules(RuleSpec("full_name", "required")), {}, today=TODAY)
    assert error is not None
    assert error.reason == "required: full_name has no value"


# --- unique -----------------------------------------------------------------------------------


def test_unique_rules_picks_only_unique() -> None:
    compiled = rules(RuleSpec("email", "unique"), RuleSpec("full_name", "required"))
    assert [(r.field, r.rule) for r in unique_rules(compiled)] == [("email", "unique")]


def test_batch_unique_violations_fails_every_repeat_naming_the_first_record() -> None:
    compiled = rules(RuleSpec("email", "unique"), RuleSpec("code", "unique"))
    rows = [
        ("1", {"email": "a@x.org", "code": "A"}),
        ("2", {"email": "b@x.org", "code": "A"}),
        ("3", {"email": "a@x.org", "code": "C"}),
        ("4", {"email": None, "code": None}),
        ("5", {"email": None, "code": "D"}),
        ("6", {"email": "a@x.org", "code": "A"}),
        ("7", {"email": "A@x.org", "code": "E"}),
    ]
    failures = batch_unique_violations(compiled, rows)
    assert sorted(failures) == ["2", "3", "6"]
    assert (failures["3"].reason, failures["3"].field, failures["3"].rule) == (
        "unique: duplicate value 'a@x.org' (also in record 1)", "email", "unique",
    )  # fmt: skip
    assert failures["2"].reason == "unique: duplicate value 'A' (also in record 1)"
    assert failures["2"].field == "code"
    assert failures["6"].field == "email"  # the first rule it breaks
    assert failures["6"].value == "a@x.org"


def test_batch_unique_violations_handles_unhashable_values_and_no_rules() -> None:
    compiled = rules(RuleSpec("code", "unique"))
    rows = [("1", {"code": {"a": [1]}}), ("2", {"code": {"a": [1]}}), ("3", {"code": {"a": 2}})]
    assert list(batch_unique_violations(compiled, rows)) == ["2"]
    assert batch_unique_violations(rules(RuleSpec("code", "required")), rows) == {}


def test_validate_row_skips_unique() -> None:
    assert validate_row(rules(RuleSpec("email", "unique")), {"email": None}, today=TODAY) is None
