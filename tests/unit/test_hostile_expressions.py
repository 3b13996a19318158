"""Expressions that pass the size limits and would still hang the import or a run.

Constant folding must not build what it refuses (``[[1] * 99999] * 99999`` is counted before
it exists), values stay bounded in size and depth (so equality, hashing and ``str()`` are),
named functions that call each other are counted once each (steps and nesting), and checking
thousands of functions is linear. Bounds are asserted as counts, never as timings.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrationsapp.engine.errors import ExpressionError, MappingError, RowError
from migrationsapp.engine.expressions import (
    MAX_EXPRESSION_LENGTH,
    MAX_INT_BITS,
    MAX_NESTING,
    MAX_NODES,
    MAX_STEPS,
    MAX_STRING_LENGTH,
    MAX_VALUE_DEPTH,
    MAX_VALUE_SIZE,
    measure,
)
from migrationsapp.engine.mapping import load_mapping_yaml
from migrationsapp.engine.transforms import compile_expression, compile_functions, compile_library
from tests.support.reliability import record

EXAMPLES = {"default": 25, "big": 200}[os.environ.get("DIFFMIG_HYPOTHESIS_PROFILE", "default")]
LIBRARY = compile_functions({})

TOO_BIG = (
    f"the result would hold more than {MAX_VALUE_SIZE} elements and characters "
    "(nested and repeated ones counted)"
)
TOO_DEEP = f"the result would be nested more than {MAX_VALUE_DEPTH} levels deep"
TOO_LONG = f"the result would be longer than {MAX_STRING_LENGTH} characters"

# (expression, why it is refused at import). Each is small text that folding would turn into
# gigabytes, minutes of hashing or comparing, or a recursion error.
HOSTILE_EXPRESSIONS = [
    ("str([[1]*99999]*99999)", f"always fails: {TOO_BIG}"),
    ("[[1]*99999]*99999 == [[1]*99999]*99999", f"always fails: {TOO_BIG}"),
    ("{((1,)*99999,)*99999: 1}", f"always fails: {TOO_BIG}"),
    ("{(((1,)*1000,)*1000,): 1}", f"always fails: {TOO_BIG}"),
    ("map(v, {((1,)*50000, (2,)*50001): 1})", f"always fails: {TOO_BIG}"),
    ("[1]*99999 + [1]*99999", f"always fails: {TOO_BIG}"),
    ("((1,)*60000,) + ((1,)*60000,)", f"always fails: {TOO_BIG}"),
    ("[['x'*50000]*3]", f"always fails: {TOO_BIG}"),
    ("1 in [[0]*99999]*99999", f"always fails: {TOO_BIG}"),
    ("[" * 21 + "1" + "]" * 21, f"always fails: {TOO_DEEP}"),
    ("(" * 21 + "1" + ",)" * 21, f"always fails: {TOO_DEEP}"),
    ("'a'*10**9", f"always fails: {TOO_LONG}"),
    ("str([1]*99999)", f"always fails: str: {TOO_LONG}"),
    ("concat(str([1]*30000), str([1]*30000))", f"always fails: concat: {TOO_LONG}"),
    ("9**9**9", "always fails: exponent 387420489 is larger than 100"),
    (
        " * ".join(["7**99"] * 30),
        f"always fails: the result would be a number of more than {MAX_INT_BITS} bits",
    ),
    ("-" * (MAX_NODES + 1) + "1", f"has {MAX_NODES + 2} parts; the limit is {MAX_NODES}"),
]


def refusal(text: str, library=LIBRARY) -> str:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text, library)
    return str(caught.value)


def label(text: str) -> str:
    shown = text if len(text) <= 80 else text[:79] + "…"
    return f"expression {shown!r}"


def test_hostile_constant_expressions_are_refused_at_import_without_being_built() -> None:
    for text, reason in HOSTILE_EXPRESSIONS:
        assert refusal(text) == f"{label(text)}: {reason}", text
    too_long = "1+" * (MAX_EXPRESSION_LENGTH // 2) + "1"
    assert refusal(too_long) == (
        f"{label(too_long)}: is {len(too_long)} characters long; "
        f"the limit is {MAX_EXPRESSION_LENGTH}"
    )
    record(
        "hostile mapping",
        "expressions whose folded value is huge, deep, or a huge number",
        tried=len(HOSTILE_EXPRESSIONS) + 1,
        held=len(HOSTILE_EXPRESSIONS) + 1,
        outcome="refused at import, naming the expression and the limit, before building it",
    )


def test_the_same_expressions_on_row_values_fail_the_row_not_the_worker() -> None:
    cases = [
        ("[v]*99999", {"v": [1, 2]}, TOO_BIG),
        ("v*99999", {"v": (1, 2)}, TOO_LONG),
        ("[w]*2", {"w": [[1] * 60000]}, TOO_BIG),
        ("{(v,)*99999: 1}", {"v": (1,) * 10}, TOO_BIG),
        ("v + v", {"v": [[0] * 1000] * 60}, TOO_BIG),
        ("concat(v, v)", {"v": "x" * 60000}, f"concat: {TOO_LONG}"),
        ("v * v * v * v * v", {"v": 2**2000}, f"the result would be a number of more than "
         f"{MAX_INT_BITS} bits"),
    ]  # fmt: skip
    for text, row, reason in cases:
        expression = compile_expression(text, LIBRARY)
        with pytest.raises(RowError) as caught:
            expression.evaluate(row)
        assert caught.value.reason == reason, text
    record(
        "hostile mapping",
        "expressions that build huge or deep values from row values",
        tried=len(cases),
        held=len(cases),
        outcome="the row fails with the limit it passed; the run goes on",
    )


# --- named functions ---------------------------------------------------------------------------


def doubling(count: int) -> dict[str, str]:
    """f1 calls f2 twice, f2 calls f3 twice, … : 2**count calls of the last one."""
    functions = {f"f{i}": f"f{i + 1}(x=x) + f{i + 1}(x=x)" for i in range(1, count)}
    functions[f"f{count}"] = "x"
    return functions


def test_named_functions_that_each_call_the_next_twice_are_refused_where_they_pass_the_budget():
    library, errors = compile_library(doubling(40))
    assert [str(e) for e in errors] == [
        f"function 'f30': one evaluation would take 8185 steps (a named function counts all "
        f"of its own steps at every call); the limit is {MAX_STEPS}",
        "functions 'f29', 'f28', 'f27' and 26 more call refused functions "
        "(first: 'f29' calls 'f30')",
    ]
    assert "f31" in library and "f30" not in library
    assert refusal("f1(x=v)", library) == "expression 'f1(x=v)': unknown function 'f1'"
    # The functions that are accepted run within the budget, folded or per row.
    assert compile_expression("f31(x=1)", library).evaluate({}) == 2**9
    assert compile_expression("f31(x=v)", library).steps <= MAX_STEPS
    record(
        "hostile mapping",
        "named functions calling the next one twice (exponential expansion)",
        tried=1,
        held=1,
        outcome="refused at import at the first function whose steps pass the budget",
    )


def test_a_long_chain_of_named_functions_is_refused_where_it_nests_too_deep():
    functions = {f"g{i}": f"g{i + 1}(x=x)" for i in range(400)}
    functions["g400"] = "x"
    library, errors = compile_library(functions)
    assert [str(e) for e in errors] == [
        f"function 'g325': one evaluation would nest {MAX_NESTING + 1} levels deep (parts "
        f"inside parts, named functions calling each other); the limit is {MAX_NESTING}",
        "functions 'g324', 'g323', 'g322' and 322 more call refused functions "
        "(first: 'g324' calls 'g325')",
    ]
    # What is accepted evaluates without reaching Python's recursion limit.
    assert compile_expression("g330(x=v)", library).evaluate({"v": 7}) == 7


def test_named_functions_that_build_deep_or_shared_values_are_refused_or_fail_the_row():
    nesting = {f"n{i}": f"[n{i + 1}(a=a)]" for i in range(1, 25)} | {"n25": "[a]"}
    sharing = {f"d{i}": f"d{i + 1}(a=[a, a])" for i in range(1, 18)} | {"d18": "a"}
    library = compile_functions(nesting | sharing)
    assert refusal("n1(a=1)", library) == f"expression 'n1(a=1)': always fails: {TOO_DEEP}"
    assert refusal("d1(a=1)", library) == f"expression 'd1(a=1)': always fails: {TOO_BIG}"
    for text in ("n1(a=v)", "d1(a=v)", "str(d1(a=v))", "d1(a=v) == d1(a=v)"):
        with pytest.raises(RowError) as caught:
            compile_expression(text, library).evaluate({"v": 1})
        assert caught.value.reason in (TOO_DEEP, TOO_BIG), text
    record(
        "hostile mapping",
        "named functions nesting or sharing values (deep equality, str of shared lists)",
        tried=6,
        held=6,
        outcome="refused at import when constant, else the row fails with the limit",
    )


def test_a_hostile_function_in_a_mapping_file_is_named_in_the_refusal():
    text = MAPPING.format(functions="".join(f'  {k}: "{v}"\n' for k, v in doubling(15).items()))
    with pytest.raises(MappingError) as caught:
        load_mapping_yaml(text)
    assert str(caught.value).splitlines() == [
        f"function 'f5': one evaluation would take 8185 steps (a named function counts all of "
        f"its own steps at every call); the limit is {MAX_STEPS}",
        "functions 'f4', 'f3', 'f2' and 1 more call refused functions (first: 'f4' calls 'f5')",
        "entity 'item', field 'label': expression 'f1(x=name)': unknown function 'f1'",
    ]


MAPPING = """\
version: 1
connections:
  legacy: {{url: "sqlite:///legacy.db"}}
  target: {{url: "sqlite:///target.db"}}
source: legacy
destination: target
functions:
{functions}entities:
  - name: item
    source_table: items
    source_key: [id]
    destination_table: item
    destination_key: id
    fields:
      - {{source: id, destination: legacy_id}}
      - {{destination: label, expression: "f1(x=name)"}}
"""


# --- checking many functions is linear ---------------------------------------------------------


def calls_made(action: Callable[[], object]) -> int:
    """The Python and builtin calls ``action`` makes: a count of work that no load can skew."""
    count = 0

    def profile(frame, event, arg) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return count


def many_functions(count: int, tag: str) -> dict[str, str]:
    """Chains of five that call the next one, each also calling the first of all."""
    functions = {f"{tag}0": "trim(x)"}
    for i in range(1, count):
        callee = f"{tag}{i + 1}(x=x)" if i % 5 and i + 1 < count else "x"
        functions[f"{tag}{i}"] = f"concat({callee}, {tag}0(x=x), '-')"
    return functions


def test_checking_thousands_of_functions_takes_linear_work():
    small = calls_made(lambda: compile_library(many_functions(500, "a")))
    large = calls_made(lambda: compile_library(many_functions(2000, "b")))
    library, errors = compile_library(many_functions(2000, "b"))
    assert errors == [] and "b1999" in library
    # Four times the functions, at most 4.4 times the work (a quadratic check would be 16).
    assert large <= 4.4 * small, (small, large)
    record(
        "hostile mapping",
        "2,000 named functions calling each other",
        tried=1,
        held=1,
        outcome="checked in work linear in their number",
    )


# --- random expression trees: within the budget or refused -------------------------------------

_LEAVES = st.one_of(
    st.integers(-3, 99999).map(str),
    st.sampled_from(["v", "w", "'ab'", "''", "None", "7**99", "[1]", "(0,)", "[]"]),
)
_TIMES = st.one_of(st.sampled_from([2, 3, 317, 1000, 99999]), st.integers(0, 99999))


def _node(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(children, children)
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "*", "-", "==", " in "]), children).map(
            lambda t: f"({t[0]}{t[1]}{t[2]})"
        ),
        st.tuples(children, _TIMES).map(lambda t: f"({t[0]}*{t[1]})"),
        st.tuples(children, _TIMES).map(lambda t: f"([{t[0]}]*{t[1]})"),
        st.lists(children, max_size=3).map(lambda items: f"[{', '.join(items)}]"),
        st.lists(children, max_size=3).map(lambda items: f"({''.join(i + ', ' for i in items)})"),
        pair.map(lambda t: f"{{{t[0]}: {t[1]}}}"),
        children.map(lambda c: f"str({c})"),
        pair.map(lambda t: f"concat({t[0]}, {t[1]})"),
        pair.map(lambda t: f"coalesce({t[0]}, {t[1]})"),
        children.map(lambda c: f"twice(x={c})"),
        children.map(lambda c: f"f1(x={c})"),
        children.map(lambda c: f"wrap(a={c})"),
    )


EXPRESSIONS = st.recursive(_LEAVES, _node, max_leaves=12)
TREE_LIBRARY = compile_functions(
    {"twice": "[x, x]", "wrap": "[wrap2(a=a)]", "wrap2": "[a, a, a]"} | doubling(10)
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(text=EXPRESSIONS)
def test_random_expression_trees_compile_within_the_budget_or_are_refused(text: str) -> None:
    try:
        expression = compile_expression(text, TREE_LIBRARY)
    except ExpressionError as exc:
        assert str(exc).startswith(label(text) + ": ")
        return
    assert expression.steps <= MAX_STEPS and expression.nesting <= MAX_NESTING
    try:
        value = expression.evaluate({"v": "abc", "w": [1, (2, 3)]})
    except RowError:
        return
    size, depth = measure(value)
    assert size <= max(MAX_VALUE_SIZE, MAX_STRING_LENGTH) and depth <= MAX_VALUE_DEPTH
    if isinstance(value, int):
        assert value.bit_length() <= MAX_INT_BITS
