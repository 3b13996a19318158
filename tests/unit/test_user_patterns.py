"""User patterns on RE2: refused when they need backtracking, linear on hostile text, and the
one replacement syntax of regex_replace (docs/mapping.md)."""

from __future__ import annotations

import datetime as dt
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrationsapp.engine.convert import show_value
from migrationsapp.engine.errors import ExpressionError, MappingError, RowError
from migrationsapp.engine.expressions import MAX_STRING_LENGTH
from migrationsapp.engine.patterns import (
    MAX_PATTERN_LENGTH,
    REPLACE_SCAN_LIMIT,
    compile_pattern,
    parse_replacement,
)
from migrationsapp.engine.transforms import compile_expression, compile_functions
from migrationsapp.engine.validation import RuleSpec, compile_rules
from tests.support.reliability import record

LIBRARY = compile_functions({})
TODAY = dt.date(2024, 5, 1)
EXAMPLES = {"default": 25, "big": 200}[os.environ.get("DIFFMIG_HYPOTHESIS_PROFILE", "default")]
LINEAR = "patterns are RE2 syntax, matched in linear time"

# (pattern, why RE2 refuses it): every one is refused at import, in both places a pattern goes.
REFUSED_PATTERNS = [
    (r"(a)\1", rf"backreferences (\1) are not supported: {LINEAR}"),
    (r"(\w+) \1", rf"backreferences (\1) are not supported: {LINEAR}"),
    (r"(?P<x>a)(?P=x)", f"(?P=name) backreferences are not supported: {LINEAR}"),
    ("a(?=b)", f"lookaround (?=…) is not supported: {LINEAR}"),
    ("a(?!b)", f"lookaround (?!…) is not supported: {LINEAR}"),
    ("(?<=a)b", f"lookaround (?<=…) is not supported: {LINEAR}"),
    ("(?<!a)b", f"lookaround (?<!…) is not supported: {LINEAR}"),
    (r"abc\Z", r"\Z is not RE2 syntax; write \z for the end of the text"),
    (r"a\Cb", r"\C (any byte) is not allowed: it would cut characters in half"),
    ("(", "missing ) at '(' (RE2 syntax)"),
    ("a{1001}", "invalid repetition size at '{1001}' (RE2 syntax)"),
    ("((a{100}){100}){100}", "invalid repetition size at '{100}' (RE2 syntax)"),
    ("a++", "bad repetition operator at '++' (RE2 syntax)"),
    ("x" * (MAX_PATTERN_LENGTH + 1), "the pattern is 1001 characters long; the limit is 1000"),
]


def run(text: str, **variables: object) -> object:
    return compile_expression(text, LIBRARY).evaluate(variables)


def row_error(text: str, **variables: object) -> RowError:
    with pytest.raises(RowError) as caught:
        run(text, **variables)
    return caught.value


def literal(text: str) -> str:
    """``text`` as a string literal of the expression language."""
    return repr(text)


def format_check(pattern: str, value: object) -> str | None:
    (rule,) = compile_rules("doctor", [RuleSpec("code", "format", {"pattern": pattern})], ["code"])
    return rule.check(value, TODAY)


# --- refused at import ------------------------------------------------------------------------


def test_patterns_that_need_backtracking_are_refused_in_regex_replace_and_format() -> None:
    for pattern, reason in REFUSED_PATTERNS:
        text = f"regex_replace(v, {literal(pattern)}, '')"
        with pytest.raises(ExpressionError) as caught:
            compile_expression(text, LIBRARY)
        assert str(caught.value).endswith(
            f": regex_replace(): invalid pattern {pattern!r}: {reason}"
        ), pattern
        with pytest.raises(MappingError) as refused:
            compile_rules("doctor", [RuleSpec("code", "format", {"pattern": pattern})], ["code"])
        (problem,) = refused.value.problems
        assert (problem.entity, problem.field) == ("doctor", "code")
        assert problem.reason == f"format: the pattern {pattern!r} is refused: {reason}"
    record(
        "hostile mapping",
        "regex needing backtracking (backreference, lookaround) or too large",
        tried=2 * len(REFUSED_PATTERNS),
        held=2 * len(REFUSED_PATTERNS),
        outcome="refused at import, naming the pattern and why (RE2 syntax)",
    )


def test_a_refused_pattern_read_from_a_column_fails_only_the_row() -> None:
    error = row_error("regex_replace(v, p, '')", v="aa", p=r"(a)\1")
    assert error.reason == (
        rf"regex_replace: invalid pattern '(a)\\1': backreferences (\1) are not supported: {LINEAR}"
    )


# --- hostile text runs in linear time ---------------------------------------------------------

# Each of these takes Python's backtracking `re` longer than the age of the universe.
CATASTROPHIC = ["(a+)+$", "(a+)+b", "(a|a)*c", "(a|aa)+$", "(.*a){12}$", "^(a?){25}a{25}$"]


def test_catastrophic_patterns_run_in_linear_time_on_long_text() -> None:
    hostile = "a" * 50_000 + "!"
    for pattern in CATASTROPHIC:
        assert run(f"regex_replace(v, {literal(pattern)}, 'x')", v=hostile) == hostile, pattern
        assert format_check(pattern, hostile) == (
            f"format: {show_value(hostile)} does not match the pattern {pattern!r}"
        )
    record(
        "hostile mapping",
        "catastrophic-backtracking regex on long text (preview, run, format rule)",
        tried=2 * len(CATASTROPHIC),
        held=2 * len(CATASTROPHIC),
        outcome="answers at once on RE2; the value is left alone or fails its format rule",
    )


def test_a_replacement_that_would_reread_the_text_at_every_match_fails_the_row() -> None:
    # x*y|x reads to the end of the text at each x before settling for one x: quadratic.
    value = "x" * 100_000
    error = row_error("regex_replace(v, 'x*y|x', 'z')", v=value)
    assert error.reason == (
        f"regex_replace: replacing 'x*y|x' in a value of 100000 characters would read more than "
        f"{REPLACE_SCAN_LIMIT} bytes; use a simpler pattern"
    )
    # An ordinary clean-up of a long text (a match in every word) stays well inside the limit.
    words = "lorem  ipsum " * 4000
    assert run(r"regex_replace(v, '\s+', ' ')", v=words) == "lorem ipsum " * 4000
    record(
        "hostile mapping",
        "regex_replace whose searches re-read the rest of a long value",
        tried=1,
        held=1,
        outcome="the row fails with the reason after a bounded number of bytes read",
    )


# --- text: NUL, characters beyond the BMP, invalid Unicode ------------------------------------


def test_nul_bytes_and_four_byte_characters_match_like_any_character() -> None:
    assert run(r"regex_replace(v, '\x00', '0')", v="a\x00b\x00") == "a0b0"
    assert run("regex_replace(v, '.', 'x')", v="😀e\u0301\x00") == "xxxx"
    assert run("regex_replace(v, '', '-')", v="😀é") == "-😀-é-"
    assert run("regex_replace(v, '😀+', '☺')", v="a😀😀b") == "a☺b"
    assert format_check("[^a]{2}", "😀\x00") is None
    assert format_check("email", "ann@x.org") is None


def test_classes_are_ascii_unless_written_as_unicode_classes() -> None:
    assert run(r"regex_replace(v, '\d', '#')", v="1٢") == "#٢"
    assert run(r"regex_replace(v, '\pN', '#')", v="1٢") == "##"
    assert run(r"regex_replace(v, '(?i)straße', 'x')", v="STRASSE Straße") == "STRASSE x"


def test_a_value_that_is_not_valid_unicode_fails_the_row() -> None:
    error = row_error("regex_replace(v, 'a', 'b')", v="\ud800a")
    assert error.reason == "regex_replace: the value is not valid Unicode text"
    assert format_check("a", "\ud800") == "format: '\\ud800': the value is not valid Unicode text"
    record(
        "dirty data",
        "text with NUL bytes, 4-byte characters or a lone surrogate through a user regex",
        tried=3,
        held=3,
        outcome="NUL and 4-byte characters match as characters; invalid text fails the row",
    )


# --- the replacement syntax -------------------------------------------------------------------


def test_groups_are_written_backslash_digit_or_g_number_or_g_name() -> None:
    assert run(r"regex_replace(v, '(\w+) (\w+)', '\\2 \\1')", v="ada lovelace") == "lovelace ada"
    assert run(r"regex_replace(v, '(\w+) (\w+)', '\\g<2> \\g<1>')", v="ada lovelace") == (
        "lovelace ada"
    )
    assert run(r"regex_replace(v, '(?P<d>[0-9]+)', '<\\g<d>>')", v="a12b3") == "a<12>b<3>"
    assert run(r"regex_replace(v, '[0-9]+', '[\\0]')", v="a12") == "a[12]"
    assert run(r"regex_replace(v, '[0-9]', '\\\\')", v="a1") == "a\\"
    assert run(r"regex_replace(v, '(a)|b', '[\\1]')", v="ab") == "[a][]"  # no match: nothing
    # One digit after the backslash: \10 is group 1, then the text "0".
    assert run(r"regex_replace(v, '(b)', '\\10')", v="abc") == "ab0c"


REFUSED_REPLACEMENTS = [
    ("a", r"\n", r"the replacement '\\n' has an unknown escape \n: write \1 or \g<name> for a "
     r"group and \\ for a backslash"),
    ("a", "\\", r"the replacement '\\' has an unknown escape a trailing \: write \1 or \g<name> "
     r"for a group and \\ for a backslash"),
    ("a", r"\g<1", r"the replacement '\\g<1' has an unfinished group reference \g<…>"),
    ("a", r"\g<1x>", r"the replacement '\\g<1x>' refers to '1x', which is neither a group "
     "number nor a group name"),
    ("(a)", r"\2", r"the replacement '\\2' uses group 2, but the pattern '(a)' has 1"),
    ("(a)", r"\g<who>", r"the replacement '\\g<who>' uses group 'who', which the pattern "
     "'(a)' does not name"),
]  # fmt: skip


def test_a_bad_replacement_is_refused_at_import_or_fails_the_row_when_read_from_a_column() -> None:
    for pattern, repl, reason in REFUSED_REPLACEMENTS:
        text = f"regex_replace(v, {literal(pattern)}, {literal(repl)})"
        with pytest.raises(ExpressionError) as caught:
            compile_expression(text, LIBRARY)
        assert str(caught.value) == f"expression {text!r}: regex_replace(): {reason}"
        error = row_error("regex_replace(v, p, r)", v="a", p=pattern, r=repl)
        assert error.reason == f"regex_replace: {reason}"
    record(
        "hostile mapping",
        "regex_replace replacement with unknown escapes or missing groups",
        tried=2 * len(REFUSED_REPLACEMENTS),
        held=2 * len(REFUSED_REPLACEMENTS),
        outcome="refused at import (literal) or the row fails (from a column), with the reason",
    )


def test_a_replacement_that_grows_past_the_limit_fails_the_row() -> None:
    error = row_error(r"regex_replace(v, '', '\\g<0>' + p)", v="a" * 2000, p="b" * 100)
    assert error.reason == (
        f"regex_replace: the result would be longer than {MAX_STRING_LENGTH} characters"
    )


# --- same answers as Python's re where both apply ----------------------------------------------

_ATOMS = st.sampled_from(["a", "b", ".", "[ab]", "[^a]", r"\d", "(a|b)", "(ab)", "(a*)", "x"])
_PATTERNS = st.lists(
    st.tuples(_ATOMS, st.sampled_from(["", "*", "+", "?", "{1,2}"])), min_size=1, max_size=4
).map(lambda parts: "".join(atom + repeat for atom, repeat in parts))


def _after_an_empty_match_step_one_character(pattern: str, repl: str, text: str) -> str:
    """The documented rule, on Python's re: after an empty match the next search starts one
    character later (Python's own re.sub would first try a non-empty match at the same place)."""
    compiled = re.compile(pattern, re.ASCII)
    out, pos, last = [], 0, 0
    while pos <= len(text):
        match = compiled.search(text, pos)
        if match is None:
            break
        out.append(text[last : match.start()] + match.expand(repl))
        last = match.end()
        pos = match.end() if match.end() > match.start() else match.end() + 1
    return "".join(out) + text[last:]


def test_after_an_empty_match_the_search_resumes_one_character_later() -> None:
    assert run("regex_replace(v, 'x*', '-')", v="abxd") == "-a-b--d-"  # as Python's re.sub
    assert run("regex_replace(v, 'a*|.', '')", v="1") == "1"  # re.sub: ""


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    pattern=st.one_of(_PATTERNS, st.tuples(_PATTERNS, _PATTERNS).map("|".join)),
    text=st.text(alphabet="ab1x\x00😀é", max_size=30),
    repl=st.sampled_from(["", "-", r"<\0>", r"\\"]),
)
def test_replacing_gives_what_python_re_gives_for_patterns_both_accept(
    pattern: str, text: str, repl: str
) -> None:
    python_repl = repl.replace(r"\0", r"\g<0>")
    if re.fullmatch(pattern, "") is None:  # never an empty match: exactly re.sub
        expected = re.sub(pattern, python_repl, text, flags=re.ASCII)
    else:
        expected = _after_an_empty_match_step_one_character(pattern, python_repl, text)
    replaced = compile_pattern(pattern).replace(
        text, parse_replacement(repl), max_length=MAX_STRING_LENGTH
    )
    assert replaced == expected
