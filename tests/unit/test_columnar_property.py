"""The vectorized transform path gives the row path's values and errors, on random batches.

Each library function with a column form, and random expression trees over text, integer,
boolean and mixed columns, are evaluated both ways (``transform`` row by row, and
``transform_batch`` with every field with a column form on columns): the values (types
included) and the errors (field, rule, reason, value) must be identical. The values include
NULLs, empty and blank text, Python-only whitespace, 4-byte characters, special casings,
bad and impossible dates, integers past 64 bits and text past the length limits.

``DIFFMIG_HYPOTHESIS_PROFILE=big`` runs 200 examples instead of 25.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrationsapp.engine.errors import ExpressionError
from migrationsapp.engine.mapping import FieldSpec
from migrationsapp.engine.transforms import compile_expression, compile_functions
from tests.support.reliability import record
from tests.unit.columnar_entities import batch_path, build_entity, row_path

EXAMPLES = {"default": 25, "big": 200}[os.environ.get("DIFFMIG_HYPOTHESIS_PROFILE", "default")]
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SPECIAL_TEXT = [
    "", " ", "\t\n", "  Ada Lovelace ", "\x1c x \x1f", "\u00a0nbsp\u3000", "\u2028", "😀 emoji",
    "\U0001d518nicode", "ß", "İstanbul", "ǅ", "ΣΑΣ ΟΔΟΣ", "Y", "n", " yes ", "TRUE", "maybe",
    "1", "0", " 42 ", "42.0", "4.5", "+7", "-0", "007", "99999999999999999999", "٣", "2021-3-7",
    "03/07/2021", "07.03.2021 10:30", "2021-03-07T10:00", "2021/12/31\tx", "0000-00-00",
    "2021-02-30", "2024-02-29", "2023-02-29", "0001-01-01", "9999-12-31", "13/45/2020",
    "next tuesday", "(555) 010-0199", "Lovelace, Ada", "a$1b", "back\\slash", "x\x00y",
    "item 3", "a", "b", "ab", "a-b c", "o'brien mc-DOWELL", "a1b c_d\tx2Y", "7" * 60_000,
    "y" * 17_500,
]  # fmt: skip
TEXT = st.one_of(
    st.none(),
    st.sampled_from(SPECIAL_TEXT),
    st.text(st.characters(codec="utf-8"), max_size=8),
    st.text(alphabet="aeiouxyz 0123-/.,\t", max_size=12),
)
INT = st.one_of(
    st.none(),
    st.integers(-10, 10),
    st.sampled_from([2**31, -(2**31), 2**62, -(2**62), 2**63 - 1, -(2**63), 2**63, -(2**70)]),
    st.integers(-(2**63), 2**63 - 1),
)
MIXED = st.one_of(TEXT, INT, st.booleans())
DATETIMES = st.one_of(
    st.none(),
    st.datetimes(),
    st.datetimes(timezones=st.sampled_from([dt.UTC, ZoneInfo("America/New_York")])),
)
DATES = st.one_of(
    DATETIMES,
    st.dates(),
    st.sampled_from(["2021-03-07", " 2024-02-29 ", "2023-02-29", "bad", ""]),
)
DECIMALS = st.one_of(
    st.none(),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, min_value=-(10**6), max_value=10**6
    ),
    st.decimals(places=4),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal("1E+1200"), Decimal("0.005"), Decimal("-0.015"), Decimal("7")]),
    st.integers(-5, 5),
)
FINITE_DECIMALS = st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False))


@st.composite
def batches(draw, *, surrogates: bool = False) -> list[dict]:
    """1 to 12 rows; one batch in a few has a mixed column, or text polars cannot hold."""
    size = draw(st.integers(1, 12))
    # Half the batches have a column of datetimes only, or of finite decimals only: the
    # columns a batch converts at once.
    dates = draw(st.sampled_from([DATES, DATETIMES]))
    decimals = draw(st.sampled_from([DECIMALS, FINITE_DECIMALS]))
    texts = st.one_of(TEXT, st.just("bad \ud800")) if surrogates else TEXT
    texts = st.one_of(texts, st.text(st.characters(codec="utf-8", exclude_characters="\x00")))
    return [
        {
            "id": index,
            "s": draw(texts),
            "t": draw(texts),
            "n": draw(INT),
            "m": draw(INT),
            "f": draw(st.one_of(st.none(), st.booleans())),
            "x": draw(MIXED),
            "d": draw(dates),
            "p": draw(decimals),
        }
        for index in range(size)
    ]


# Every function with a column form, on the columns it accepts, as transforms.
FUNCTION_FIELDS = [
    ("trim", "s", "trim"), ("lower", "s", "lower"), ("upper", "s", "upper"),
    ("collapse", "s", "collapse_spaces"), ("email", "s", "email"), ("str_s", "s", "str"),
    ("str_n", "n", "str"), ("str_f", "f", "str"), ("to_int_s", "s", "to_int"),
    ("to_int_n", "n", "to_int"), ("to_int_f", "f", "to_int"), ("to_bool_s", "s", "to_bool"),
    ("to_bool_n", "n", "to_bool"), ("to_bool_f", "f", "to_bool"), ("legacy", "s", "legacy_date"),
    ("map_s", "s", "map(value, {'a': 'x', 'b': None, 1: 'one', 'ß': 'ss'}, 'z')"),
    ("map_n", "n", "map(value, {1: 'one', 0: 'zero', 'a': 'x'})"),
    ("coalesce", "s", "coalesce(value, 'n/a')"), ("default_s", "s", "default(value, 'n/a')"),
    ("default_n", "n", "default(value, -1)"), ("concat", "s", "concat('P-', value, None, 7, True)"),
    ("concat2", "s", "concat(value, value)"),
    ("regex1", "s", r"regex_replace(value, r'[^0-9]', '')"),
    ("regex2", "s", r"regex_replace(value, r'(\w+), (\w+)', r'\2 \1')"),
    ("regex3", "s", r"regex_replace(value, r'(?P<a>\d)\s*', r'<\g<a>$>')"),
    ("regex4", "s", r"regex_replace(value, r'[\s\-]+', '-')"),
    ("regex5", "s", r"regex_replace(value, r'(?s).\.', r'\\')"),
    ("regex6", "s", r"regex_replace(value, r'\b', '|')"),
    ("regex7", "s", r"regex_replace(value, r'[[:alpha:]]+|x*', '#')"),
    ("regex8", "s", r"regex_replace(value, r'y+', 'yy')"),
    ("title", "s", "title"), ("mixed", "x", "str"),
]  # fmt: skip
TYPED = {"legacy": "date", "to_int_s": "integer", "trim": "text", "to_bool_s": "boolean"}


def function_entity():
    fields = [FieldSpec(destination=d, source=s, transform=t) for d, s, t in FUNCTION_FIELDS]
    fields.append(FieldSpec(destination="req", source="s", transform="trim", required=True))
    fields.append(FieldSpec(destination="dflt", source="s", transform="legacy_date", default="-"))
    return build_entity(fields, kinds=TYPED)


FUNCTIONS = function_entity()


def test_every_column_form_gives_the_row_paths_values_and_errors():
    tried = 0

    @SETTINGS
    @given(rows=batches(surrogates=True))
    def compare(rows):
        nonlocal tried
        assert batch_path(FUNCTIONS, rows) == row_path(FUNCTIONS, rows)
        tried += len(rows)

    compare()
    record(
        "dirty data",
        "vectorized library functions vs the row path (NULLs, blanks, 4-byte text, bad dates)",
        tried=tried,
        held=tried,
        outcome="identical values and errors",
    )


# Random expression trees over the columns.
TEXT_LEAVES = ["s", "t", "x", "'a'", "''", "' x '", "None"]
INT_LEAVES = ["n", "m", "f", "0", "1", "-3", "9223372036854775807"]
NODES = [
    "({0} + {1})", "({0} - {1})", "({0} * {1})", "({0} // {1})", "({0} % {1})", "(-{0})",
    "(not {0})", "({0} == {1})", "({0} != {1})", "({0} < {1})", "({0} <= {1} < {2})",
    "({0} in {1})", "({0} in ('a', None, 3))", "({0} in (1, 2, 3))", "({0} is None)",
    "({0} is not None)", "({0} or {1})", "({0} and {1})", "({0} if {1} else {2})",
    "trim({0})", "upper({0})", "lower({0})", "collapse_spaces({0})", "str({0})", "to_int({0})",
    "to_bool({0})", "concat({0}, {1})", "coalesce({0}, {1})", "default({0}, {1})",
    "legacy_date({0})", "map({0}, {{'a': 1, 'b': 2}}, 0)", "regex_replace({0}, r'[aeiou]+', '_')",
    "title({0})", "twice(v={0})",
]  # fmt: skip
LIBRARY_FUNCTIONS = {"twice": "concat(v, '-', v)"}
LIBRARY = compile_functions(LIBRARY_FUNCTIONS)


def expressions():
    leaves = st.sampled_from(TEXT_LEAVES + INT_LEAVES)

    def grow(children):
        return st.builds(
            lambda node, a, b, c: node.format(a, b, c),
            st.sampled_from(NODES),
            children,
            children,
            children,
        )

    return st.recursive(leaves, grow, max_leaves=10)


def compiles(text: str) -> bool:
    try:
        compile_expression(text, LIBRARY)
    except ExpressionError:
        return False
    return True


def test_random_expressions_give_the_row_paths_values_and_errors():
    tried = 0

    @SETTINGS
    @given(texts=st.lists(expressions().filter(compiles), min_size=1, max_size=4), rows=batches())
    def compare(texts, rows):
        nonlocal tried
        fields = [FieldSpec(destination=f"e{i}", expression=text) for i, text in enumerate(texts)]
        compiled = build_entity(fields, functions=LIBRARY_FUNCTIONS)
        assert batch_path(compiled, rows) == row_path(compiled, rows)
        tried += len(texts)

    compare()
    record(
        "hostile mapping",
        "random expression trees, vectorized vs the row path",
        tried=tried,
        held=tried,
        outcome="identical values and errors",
    )


# Plain columns, copied or converted, and plain references, onto typed columns, NULL or not.
PLAIN_FIELDS = [
    ("text_s", "s", "text"), ("text_x", "x", "text"), ("int_n", "n", "integer"),
    ("int_x", "x", "integer"), ("bool_f", "f", "boolean"), ("bool_x", "x", "boolean"),
    ("date_d", "d", "date"), ("uuid_s", "s", "uuid"), ("float_n", "n", "float"),
    ("other_x", "x", "other"), ("stamp_d", "d", "datetime"), ("stamp_tz_d", "d", "datetime_tz"),
    ("num_p", "p", "numeric"), ("num2_p", "p", "numeric"), ("float_p", "p", "float"),
]  # fmt: skip
SCALES = {"num2_p": 2}
REFERENCES = [("ref_n", "n"), ("ref_s", "s"), ("ref_x", "x"), ("ref_f", "f")]
# Lone text transforms, called on the source values directly: onto text, with a default or
# required, on text and on a mixed column.
LONE = [
    FieldSpec(destination="trim_s", source="s", transform="trim"),
    FieldSpec(destination="title_s", source="s", transform="title(value)"),
    FieldSpec(destination="upper_x", source="x", transform="upper"),
    FieldSpec(destination="lower_t", source="t", transform="lower", required=True),
    FieldSpec(destination="trim_t", source="t", transform="trim", default="-"),
]


def plain_entity(not_null: frozenset[str]):
    fields = [FieldSpec(destination=d, source=s) for d, s, _ in PLAIN_FIELDS]
    fields += [FieldSpec(destination=d, source=s, reference="parent") for d, s in REFERENCES]
    fields += LONE
    kinds = {d: kind for d, _, kind in PLAIN_FIELDS} | {d: "uuid" for d, _ in REFERENCES}
    kinds |= {field.destination: "text" for field in LONE}
    return build_entity(
        fields,
        kinds=kinds,
        not_null=not_null,
        every_field=False,
        depends_on=("parent",),
        scales=SCALES,
    )


NAMES = [d for d, _, _ in PLAIN_FIELDS] + [d for d, _ in REFERENCES] + [f.destination for f in LONE]


def test_plain_columns_and_references_give_the_row_paths_values_and_errors():
    tried = 0

    @SETTINGS
    @given(rows=batches(surrogates=True), not_null=st.frozensets(st.sampled_from(NAMES)))
    def compare(rows, not_null):
        nonlocal tried
        compiled = plain_entity(not_null)
        assert batch_path(compiled, rows) == row_path(compiled, rows)
        tried += len(rows)

    compare()
    record(
        "dirty data",
        "plain columns, references and lone text transforms for a whole batch vs the row path",
        tried=tried,
        held=tried,
        outcome="identical values and errors",
    )


def test_a_plain_batch_keeps_the_row_paths_refusals_and_escapes():
    fields = [
        FieldSpec(destination="text_s", source="s"),
        FieldSpec(destination="ref_s", source="s", reference="parent"),
        FieldSpec(destination="ref_n", source="n", reference="parent"),
    ]
    compiled = build_entity(
        fields,
        kinds={"text_s": "text", "ref_s": "uuid", "ref_n": "uuid"},
        not_null=frozenset({"ref_n"}),
        every_field=False,
        depends_on=("parent",),
    )
    rows = [
        {"id": 1, "s": "a/b", "n": 7},
        {"id": 2, "s": "c\\d", "n": 8},
        {"id": 3, "s": "x\x00y", "n": 9},
        {"id": 4, "s": "ok", "n": None},
    ]
    assert batch_path(compiled, rows) == row_path(compiled, rows)
    results = compiled.transform_batch(rows)
    assert (results[0]["ref_s"].key_text, results[1]["ref_s"].key_text) == ("a\\/b", "c\\\\d")
    assert results[1]["ref_n"].key_text == "8"
    assert (results[2].field, results[2].rule) == ("text_s", "type")  # the NUL byte
    assert (results[3].field, results[3].rule) == ("ref_n", "required")  # NOT NULL
