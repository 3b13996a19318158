"""The function library and the safe expression language (transforms, expressions, functions)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrationsapp.engine.errors import ExpressionError, RowError
from migrationsapp.engine.expressions import MAX_EXPRESSION_LENGTH, MAX_NODES, MAX_STRING_LENGTH
from migrationsapp.engine.transforms import (
    BUILTIN_FUNCTIONS,
    Expression,
    FunctionLibrary,
    compile_expression,
    compile_functions,
    compile_transform,
)

LIBRARY = compile_functions({})


def run(text: str, **variables: object) -> object:
    return compile_expression(text, LIBRARY).evaluate(variables)


def call(name: str, *args: object) -> object:
    return LIBRARY.call(name, *args)


def refused(text: str, library: FunctionLibrary = LIBRARY) -> str:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text, library)
    return str(caught.value)


def row_error(text: str, **variables: object) -> RowError:
    with pytest.raises(RowError) as caught:
        run(text, **variables)
    return caught.value


# --- the library ------------------------------------------------------------------------------


def test_library_has_exactly_the_contract_functions() -> None:
    assert set(BUILTIN_FUNCTIONS) == {
        "trim", "lower", "upper", "title", "collapse_spaces", "str", "to_int", "to_decimal",
        "to_bool", "parse_date", "legacy_date", "phone_e164", "email", "map", "coalesce",
        "default", "concat", "regex_replace",
    }  # fmt: skip
    assert LIBRARY.names == frozenset(BUILTIN_FUNCTIONS)
    assert "trim" in LIBRARY
    assert "eval" not in LIBRARY


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("trim", "  a b  ", "a b"),
        ("lower", "ÀbC", "àbc"),
        ("upper", "abc", "ABC"),
        ("title", "o'neil mc-DONALD", "O'Neil Mc-Donald"),
        ("collapse_spaces", "  a \t\n b   c ", "a b c"),
        ("email", "  Bob.Smith@Example.COM ", "bob.smith@example.com"),
    ],
)
def test_text_functions_clean_text(name: str, given: str, expected: str) -> None:
    assert call(name, given) == expected


@pytest.mark.parametrize(
    "name",
    [
        "trim", "lower", "upper", "title", "collapse_spaces", "str", "to_int", "to_decimal",
        "to_bool", "legacy_date", "email",
    ],
)  # fmt: skip
def test_one_argument_functions_return_none_for_none(name: str) -> None:
    assert call(name, None) is None


@pytest.mark.parametrize("name", ["trim", "lower", "upper", "title", "collapse_spaces", "email"])
def test_text_functions_refuse_a_number_naming_the_function(name: str) -> None:
    with pytest.raises(RowError) as caught:
        call(name, 42)
    assert caught.value.reason == f"{name}: expected text, got 42"
    assert caught.value.value == 42


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("abc", "abc"),
        (42, "42"),
        (Decimal("1E+2"), "100"),
        (Decimal("1.50"), "1.50"),
        (1e-07, "0.0000001"),
        (1e16, "10000000000000000"),
        (2.5, "2.5"),
        (True, "true"),
        (dt.date(2021, 3, 7), "2021-03-07"),
        (dt.datetime(2021, 3, 7, 10, 30), "2021-03-07T10:30:00"),
        (dt.time(9, 5), "09:05:00"),
        ("é".encode(), "é"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ],
)
def test_str_renders_values_without_exponent_noise(given: object, expected: str) -> None:
    assert call("str", given) == expected


def test_str_refuses_bytes_that_are_not_utf8() -> None:
    with pytest.raises(RowError, match=r"^str: b'\\xff' is not convertible to text$"):
        call("str", b"\xff")


@pytest.mark.parametrize(
    ("given", "expected"),
    [(42, 42), ("42", 42), (" 42 ", 42), ("-7", -7), ("42.0", 42), (42.0, 42),
     (Decimal("42"), 42), (True, 1)],
)  # fmt: skip
def test_to_int_accepts_integral_values(given: object, expected: int) -> None:
    assert call("to_int", given) == expected


@pytest.mark.parametrize("given", ["4.5", "abc", "", "1e5", "٤٢", 4.5, Decimal("4.5"), [1]])
def test_to_int_refuses_what_is_not_an_integer(given: object) -> None:
    with pytest.raises(RowError) as caught:
        call("to_int", given)
    assert caught.value.reason == f"to_int: {given!r} is not an integer"


@pytest.mark.parametrize(
    ("given", "expected"),
    [(Decimal("1.10"), Decimal("1.10")), ("1.10", Decimal("1.10")), (" -3 ", Decimal("-3")),
     (0.1, Decimal("0.1")), (7, Decimal("7"))],
)  # fmt: skip
def test_to_decimal_goes_through_text_for_floats(given: object, expected: Decimal) -> None:
    result = call("to_decimal", given)
    assert result == expected
    assert str(result) == str(expected)


@pytest.mark.parametrize("given", ["abc", "NaN", "1_000", float("inf"), True])
def test_to_decimal_refuses_what_is_not_a_finite_number(given: object) -> None:
    with pytest.raises(RowError, match=r"^to_decimal: .* is not a decimal number$"):
        call("to_decimal", given)


@pytest.mark.parametrize(
    ("given", "expected"),
    [(1, True), (0, False), ("Y", True), ("n", False), ("YES", True), (" no ", False),
     ("True", True), ("false", False), ("1", True), ("0", False), (True, True), (False, False)],
)  # fmt: skip
def test_to_bool_reads_the_usual_spellings(given: object, expected: bool) -> None:
    assert call("to_bool", given) is expected


@pytest.mark.parametrize("given", [2, "maybe", "", "t"])
def test_to_bool_refuses_anything_else(given: object) -> None:
    with pytest.raises(RowError) as caught:
        call("to_bool", given)
    assert caught.value.reason == (
        f"to_bool: {given!r} is not a boolean (expected 1/0, Y/N, yes/no or true/false)"
    )


def test_parse_date_is_strict() -> None:
    assert call("parse_date", "07/03/2021", "%d/%m/%Y") == dt.date(2021, 3, 7)
    assert call("parse_date", dt.datetime(2021, 3, 7, 10, 0), "%Y") == dt.date(2021, 3, 7)
    assert call("parse_date", dt.date(2021, 3, 7), "%Y") == dt.date(2021, 3, 7)
    assert call("parse_date", None, "%Y") is None
    with pytest.raises(RowError) as caught:
        call("parse_date", "2021-03-07 ", "%Y-%m-%d")
    assert caught.value.reason == "parse_date: '2021-03-07 ' does not match the format '%Y-%m-%d'"
    with pytest.raises(RowError, match="does not match"):
        call("parse_date", 20210307, "%Y%m%d")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2021-03-07", dt.date(2021, 3, 7)),
        ("2021-3-7", dt.date(2021, 3, 7)),
        ("03/07/2021", dt.date(2021, 3, 7)),
        ("3/7/2021", dt.date(2021, 3, 7)),
        ("07.03.2021", dt.date(2021, 3, 7)),
        ("7.3.2021", dt.date(2021, 3, 7)),
        ("2021-03-07 10:30:00", dt.date(2021, 3, 7)),
        ("2021-03-07T10:30:00", dt.date(2021, 3, 7)),
        (" 3/7/2021 12:00 AM", dt.date(2021, 3, 7)),
        (dt.datetime(2021, 3, 7, 23, 59), dt.date(2021, 3, 7)),
        (dt.date(2021, 3, 7), dt.date(2021, 3, 7)),
    ],
)
def test_legacy_date_reads_lenient_forms(given: object, expected: dt.date) -> None:
    assert call("legacy_date", given) == expected


@pytest.mark.parametrize(
    "given",
    ["0000-00-00", "0000-00-00 00:00:00", "00/00/0000", "00.00.0000", "", "   ",
     "2021-02-30", "13/01/2021", "2021-00-10"],
)  # fmt: skip
def test_legacy_date_turns_zero_empty_and_impossible_dates_into_none(given: str) -> None:
    assert call("legacy_date", given) is None


@pytest.mark.parametrize("given", ["yesterday", "2021/13", "21-03-07", 20210307])
def test_legacy_date_refuses_what_is_no_date_at_all(given: object) -> None:
    with pytest.raises(RowError, match=r"^legacy_date: .* is not a date"):
        call("legacy_date", given)


def test_phone_e164_formats_valid_numbers() -> None:
    assert call("phone_e164", "(650) 253-0000", "US") == "+16502530000"
    assert call("phone_e164", "650.253.0000", "us") == "+16502530000"
    assert call("phone_e164", "+44 20 7031 3000", "US") == "+442070313000"
    assert call("phone_e164", 6502530000, "US") == "+16502530000"
    assert call("phone_e164", None, "US") is None


@pytest.mark.parametrize("given", ["555-0100", "not a phone", "", "123"])
def test_phone_e164_refuses_invalid_numbers(given: str) -> None:
    with pytest.raises(RowError) as caught:
        call("phone_e164", given, "US")
    assert caught.value.reason == f"phone_e164: invalid phone number {given!r} for region US"


def test_map_looks_up_with_a_default() -> None:
    assert run("map(v, {'Y': True, 'N': False}, None)", v="Y") is True
    assert run("map(v, {'Y': True, 'N': False}, None)", v="N") is False
    assert run("map(v, {'Y': True}, 'unknown')", v="Q") == "unknown"
    assert run("map(v, {'Y': True})", v="Q") is None
    assert run("map(v, {1: 'one'}, default='other')", v=1) == "one"
    assert run("map(v, {'Y': True}, 'unknown')", v=None) is None


def test_map_refuses_an_unhashable_value() -> None:
    assert row_error("map(v, {'a': 1})", v=[1]).reason == "map: [1] cannot be looked up"


def test_coalesce_default_and_concat_handle_none_themselves() -> None:
    assert run("coalesce(a, b, c)", a=None, b="", c="x") == ""
    assert run("coalesce(a, b)", a=None, b=None) is None
    assert run("coalesce()") is None
    assert run("default(v, 'n/a')", v=None) == "n/a"
    assert run("default(v, 'n/a')", v="  ") == "n/a"
    assert run("default(v, 'n/a')", v=0) == 0
    assert run("default(v, 'n/a')", v="x") == "x"
    assert run("concat(a, '-', b, '-', c)", a="x", b=None, c=Decimal("1.50")) == "x--1.50"
    assert run("concat(a, b)", a=None, b=None) == ""


def test_concat_refuses_a_result_over_the_limit() -> None:
    half = "a" * (MAX_STRING_LENGTH // 2 + 1)
    error = row_error("concat(a, a)", a=half)
    assert error.reason == f"concat: the result would be longer than {MAX_STRING_LENGTH} characters"


def test_regex_replace_substitutes_with_groups() -> None:
    assert run("regex_replace(v, '[^0-9]', '')", v="(650) 253-0000") == "6502530000"
    assert run(r"regex_replace(v, '(\w+) (\w+)', '\\2 \\1')", v="ada lovelace") == "lovelace ada"
    assert run("regex_replace(v, 'x', 'y')", v=None) is None


def test_regex_replace_bounds_a_growing_result() -> None:
    error = row_error(r"regex_replace(v, '', '\\g<0>' + p)", v="a" * 2000, p="b" * 100)
    assert error.reason == (
        f"regex_replace: the result would be longer than {MAX_STRING_LENGTH} characters"
    )


def test_regex_replace_with_a_literal_bad_pattern_is_refused_at_compile_time() -> None:
    assert refused("regex_replace(v, '(', '')") == (
        "expression \"regex_replace(v, '(', '')\": regex_replace(): invalid pattern '(': "
        "missing ) at '(' (RE2 syntax)"
    )


def test_regex_replace_with_a_bad_pattern_from_a_column_fails_the_row() -> None:
    error = row_error("regex_replace(v, p, '')", v="abc", p="(")
    assert error.reason == "regex_replace: invalid pattern '(': missing ) at '(' (RE2 syntax)"


def test_compile_time_checks_arity_and_literal_arguments() -> None:
    assert refused("trim(a, b)") == "expression 'trim(a, b)': trim(): too many positional arguments"
    assert refused("parse_date(v)").endswith("parse_date(): missing a required argument: 'fmt'")
    assert refused("phone_e164(v, 'XX')").endswith("phone_e164(): unknown region 'XX'")
    assert refused("map(v, [1, 2])").endswith(
        "map(): the second argument must be a dict, not [1, 2]"
    )
    assert refused("parse_date(v, 5)").endswith("parse_date(): the format must be text, not 5")


# --- the expression language ------------------------------------------------------------------


def test_expression_reports_the_columns_it_reads_but_not_function_names() -> None:
    expression = compile_expression(
        "concat(upper(first), ' ', last) if active_flag == 'Y' else email(email)", LIBRARY
    )
    assert isinstance(expression, Expression)
    assert expression.names == frozenset({"first", "last", "active_flag", "email"})
    assert compile_expression("1 + 2", LIBRARY).names == frozenset()


def test_expression_supports_the_allowed_constructs() -> None:
    assert run("'yes' if active_flag == 'Y' else 'no'", active_flag="Y") == "yes"
    assert run("(a + b) * 2 - c / 4 + c // 3 + c % 5 + 2 ** 3", a=1, b=2, c=8) == 17.0
    assert run("-a + +a", a=3) == 0
    assert run("not a and b or c", a=False, b=0, c="z") == "z"
    assert run("a and b", a=1, b=0) == 0
    assert run("a or b", a="", b="x") == "x"
    assert run("1 < a <= 3 != b", a=3, b=4) is True
    assert run("1 < a < 2", a=3) is False
    assert run("a in ('x', 'y') and b not in ['z']", a="x", b="q") is True
    assert run("a is None and b is not None", a=None, b=0) is True
    assert run("[a, (b,), {'k': c}]", a=1, b=2, c=3) == [1, (2,), {"k": 3}]
    assert run("True if none is None else False", none=None) is True


def test_expression_is_reusable_across_rows_and_threads() -> None:
    expression = compile_expression("a * 2", LIBRARY)
    results: list[object] = []

    def work(n: int) -> None:
        results.extend(expression.evaluate({"a": i}) for i in range(n, n + 100))

    threads = [threading.Thread(target=work, args=(n * 100,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [i * 2 for i in range(400)]


def test_expression_is_immutable() -> None:
    expression = compile_expression("a", LIBRARY)
    with pytest.raises(AttributeError):
        expression.text = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "construct"),
    [
        ("value.__class__", "attribute access (`.__class__`)"),
        ("().__class__.__bases__", "attribute access (`.__bases__`)"),
        ("lambda: 1", "a lambda"),
        ("[x for x in y]", "a comprehension"),
        ("{k: 1 for k in y}", "a comprehension"),
        ("trim(x for x in y)", "a comprehension"),
        ("x[0]", "a subscript (`x[...]`)"),
        ("f'{x}'", "an f-string"),
        ("(x := 1)", "an assignment expression (`:=`)"),
        ("trim(*x)", "a starred argument (`*x`)"),
        ("[*x]", "a starred argument (`*x`)"),
        ("{1, 2}", "a set literal (use a tuple)"),
        ("x << 1", "operator `<<`"),
        ("x @ y", "operator `@`"),
        ("~x", "operator `~`"),
        ("{**x}", "dict unpacking (`**`)"),
        ("trim(**x)", "a `**` argument"),
    ],
)
def test_refused_constructs_name_the_construct(text: str, construct: str) -> None:
    assert refused(text) == f"expression {text!r}: {construct} is not allowed"


def test_only_library_functions_may_be_called_by_name() -> None:
    assert refused("eval('1')") == "expression \"eval('1')\": unknown function 'eval'"
    assert refused("__import__('os')").endswith("unknown function '__import__'")
    assert refused("x.upper()") == (
        "expression 'x.upper()': only library functions may be called, by name; "
        "attribute access (`.upper`) is not allowed"
    )
    assert refused("(lambda: 1)()").endswith("a lambda is not allowed")


def test_constants_other_than_text_numbers_booleans_and_none_are_refused() -> None:
    assert refused("b'x'") == "expression \"b'x'\": constants of type bytes are not allowed"
    assert refused("1j").endswith("constants of type complex are not allowed")
    assert refused("...").endswith("constants of type ellipsis are not allowed")


def test_is_is_allowed_only_against_none() -> None:
    assert (
        refused("x is 1")
        == "expression 'x is 1': `is` is allowed only as `is None` / `is not None`"
    )


def test_constant_parts_that_always_fail_are_refused_at_compile_time() -> None:
    assert (
        refused("9**9**9")
        == "expression '9**9**9': always fails: exponent 387420489 is larger than 100"
    )
    assert refused("'a'*10**9") == (
        "expression \"'a'*10**9\": always fails: the result would be longer than 100000 characters"
    )
    assert refused("1 / 0") == "expression '1 / 0': always fails: division by zero: 1 / 0"
    assert refused("to_int('abc')") == (
        "expression \"to_int('abc')\": always fails: to_int: 'abc' is not an integer"
    )


def test_size_limits_are_enforced_at_compile_time() -> None:
    long_text = "a" * (MAX_EXPRESSION_LENGTH + 1)
    assert refused(long_text).endswith(
        f"is {MAX_EXPRESSION_LENGTH + 1} characters long; the limit is {MAX_EXPRESSION_LENGTH}"
    )
    many_nodes = " + ".join(["a"] * 101)
    assert refused(many_nodes).endswith(f"has 201 parts; the limit is {MAX_NODES}")
    assert compile_expression(" + ".join(["a"] * 100), LIBRARY).evaluate({"a": 1}) == 100


def test_syntax_errors_and_empty_text_are_refused() -> None:
    assert refused("a +").startswith("expression 'a +': does not parse: invalid syntax")
    assert refused("   ") == "expression '   ': is empty"
    assert refused("import os").startswith("expression 'import os': does not parse")


def test_power_limits_apply_at_run_time() -> None:
    assert run("a ** 100", a=2) == 2**100
    assert row_error("a ** b", a=2, b=101).reason == "exponent 101 is larger than 100"
    assert row_error("a ** 100", a=10**100).reason.endswith("** 100 would be too large")
    assert row_error("a ** 0.5", a=-8).reason == "-8 ** 0.5 is not a real number"
    assert row_error("a ** 100", a=1e300).reason.startswith("1e+300 ** 100 failed:")


def test_repetition_and_concatenation_limits_apply_at_run_time() -> None:
    assert row_error("value * 10**9", value="a").reason == (
        f"the result would be longer than {MAX_STRING_LENGTH} characters"
    )
    assert row_error("[0] * n", n=MAX_STRING_LENGTH + 1).reason.startswith("the result would be")
    big = "a" * MAX_STRING_LENGTH
    assert row_error("a + 'b'", a=big).reason.startswith("the result would be longer")
    assert run("a * 3", a="ab") == "ababab"


def test_text_formatting_with_percent_is_refused() -> None:
    assert row_error("a % 1", a="%999999999d").reason == (
        "the % operator does not format text here; use concat() or str()"
    )


@pytest.mark.parametrize(
    ("text", "variables", "reason"),
    [
        ("a + 3", {"a": "abc"}, "cannot add 'abc' and 3"),
        ("a - 'x'", {"a": 1}, "cannot subtract 'x' from 1"),
        ("a * b", {"a": "x", "b": "y"}, "cannot multiply 'x' by 'y'"),
        ("a / b", {"a": 1, "b": 0}, "division by zero: 1 / 0"),
        ("a // b", {"a": 1, "b": 0}, "division by zero: 1 // 0"),
        ("a % b", {"a": 1, "b": 0}, "division by zero: 1 % 0"),
        ("a / 'b'", {"a": 1}, "cannot divide 1 by 'b'"),
        ("a < 3", {"a": "abc"}, "cannot compare 'abc' < 3"),
        ("a in 3", {"a": "x"}, "cannot compare 'x' in 3"),
        ("-a", {"a": "x"}, "cannot negate 'x'"),
        ("+a", {"a": "x"}, "cannot apply unary + to 'x'"),
        ("a + b", {"a": Decimal("1.5"), "b": 0.5}, "cannot add Decimal('1.5') and 0.5"),
        ("{a: 1}", {"a": [1]}, "a dict key cannot be used: unhashable type: 'list'"),
        ("missing", {}, "unknown name 'missing'"),
    ],
)
def test_run_time_failures_become_row_errors(
    text: str, variables: dict[str, object], reason: str
) -> None:
    assert row_error(text, **variables).reason == reason


def test_and_or_short_circuit_so_the_other_side_is_not_evaluated() -> None:
    assert run("a is None or a > 3", a=None) is True
    assert run("a is not None and a > 3", a=None) is False
    assert run("1 / a if a else 0", a=0) == 0


@settings(max_examples=25, deadline=None)
@given(st.text(max_size=50))
def test_trim_transform_matches_str_strip(text: str) -> None:
    assert compile_transform("trim", LIBRARY).evaluate({"value": text}) == text.strip()


# --- transforms -------------------------------------------------------------------------------


def test_a_bare_function_name_transform_means_the_function_of_value() -> None:
    transform = compile_transform("trim", LIBRARY)
    assert transform.text == "trim"
    assert transform.names == frozenset({"value"})
    assert transform.evaluate({"value": "  x "}) == "x"
    assert compile_transform(" legacy_date ", LIBRARY).evaluate({"value": "0000-00-00"}) is None
    assert compile_transform("value", LIBRARY).evaluate({"value": 5}) == 5


def test_a_transform_expression_sees_only_value() -> None:
    assert (
        compile_transform("phone_e164(value, 'US')", LIBRARY).evaluate({"value": "650-253-0000"})
        == "+16502530000"
    )
    with pytest.raises(ExpressionError) as caught:
        compile_transform("concat(value, other)", LIBRARY)
    assert str(caught.value) == (
        "transform 'concat(value, other)': a transform sees only `value`, not other"
    )


def test_a_transform_naming_an_unknown_function_is_refused() -> None:
    with pytest.raises(ExpressionError, match=r"^transform 'nope': unknown function 'nope'$"):
        compile_transform("nope", LIBRARY)


# --- named functions --------------------------------------------------------------------------

FUNCTIONS = {
    "full_name": "title(trim(first)) + ' ' + title(trim(last))",
    "greeting": "concat('Dear ', full_name(first=given, last=family))",
    "yes_no": "'yes' if to_bool(flag) else 'no'",
}


def test_named_functions_take_their_free_names_as_keyword_parameters() -> None:
    library = compile_functions(FUNCTIONS)
    assert library.names == frozenset(BUILTIN_FUNCTIONS) | set(FUNCTIONS)
    assert library.parameters("full_name") == frozenset({"first", "last"})
    assert library.parameters("trim") is None
    expression = compile_expression("full_name(first=first_name, last=last_name)", library)
    assert expression.names == frozenset({"first_name", "last_name"})
    assert expression.evaluate({"first_name": " ada ", "last_name": "LOVELACE"}) == "Ada Lovelace"
    assert library.call("full_name", first="alan", last="turing") == "Alan Turing"


def test_named_functions_may_call_other_named_functions() -> None:
    library = compile_functions(FUNCTIONS)
    assert library.call("greeting", given="ada", family="lovelace") == "Dear Ada Lovelace"


def test_a_named_function_with_one_parameter_works_as_a_bare_transform() -> None:
    library = compile_functions(FUNCTIONS)
    assert compile_transform("yes_no", library).evaluate({"value": "Y"}) == "yes"


def test_named_function_calls_are_checked_at_compile_time() -> None:
    library = compile_functions(FUNCTIONS)
    assert refused("full_name(a, b)", library) == (
        "expression 'full_name(a, b)': full_name() takes keyword arguments only: "
        "full_name(first=…, last=…)"
    )
    assert refused("full_name(first=a)", library).endswith(
        "full_name() is missing last: full_name(first=…, last=…)"
    )
    assert refused("full_name(first=a, last=b, middle=c)", library).endswith(
        "full_name() has no parameter middle: full_name(first=…, last=…)"
    )


def test_named_function_calls_are_checked_at_run_time() -> None:
    library = compile_functions(FUNCTIONS)
    with pytest.raises(RowError, match=r"^full_name\(\) takes keyword arguments only"):
        library.call("full_name", "ada", "lovelace")
    with pytest.raises(RowError, match=r"^full_name\(\) is missing last"):
        library.call("full_name", first="ada")


def test_a_named_function_cannot_reach_the_callers_columns() -> None:
    library = compile_functions({"f": "x"})
    assert compile_expression("f(x=y)", library).evaluate({"y": 1, "x": 2}) == 1


def test_a_cycle_among_named_functions_is_refused_naming_it() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_functions({"a": "b(x=x)", "b": "c(x=x)", "c": "a(x=x)"})
    assert str(caught.value) == "named functions call each other in a cycle: a -> b -> c -> a"
    with pytest.raises(ExpressionError, match=r"cycle: loop -> loop$"):
        compile_functions({"loop": "loop(x=x)"})


def test_a_named_function_may_not_shadow_a_builtin() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_functions({"trim": "x"})
    assert str(caught.value) == (
        "function 'trim': shadows the library function of that name; rename it"
    )


def test_named_function_definitions_are_checked() -> None:
    with pytest.raises(ExpressionError, match=r"^function 'bad name': a function name must be"):
        compile_functions({"bad name": "x"})
    with pytest.raises(ExpressionError, match=r"^function 'f': attribute access \(`.y`\)"):
        compile_functions({"f": "x.y"})
    with pytest.raises(ExpressionError, match=r"^function 'f': unknown function 'g'$"):
        compile_functions({"f": "g(x)"})
