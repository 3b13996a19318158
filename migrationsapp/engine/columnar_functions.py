"""The column forms of the function library (engine.builtin_functions), one next to the other.

Each form takes the call's arguments as ``Column``s (engine.columnar_types) and gives the
call's Column: the same values as the library function on every row it does not mark
unsure. It marks unsure every row where the function fails (the row path then raises the
very same RowError) and every row where polars could differ from Python: case changes of
non-ASCII text (Unicode versions and special casings differ), text past the length limits,
integers past 64 bits. A function or an argument type it does not handle raises
NoColumnForm and the field runs row-wise. ``title`` runs on ASCII text only, where a letter
is upper-cased after any character that is not a letter and lower-cased after one, in Python
and in polars alike; other text is unsure. ``to_decimal``, ``parse_date`` and ``phone_e164``
have no column form: ``Decimal`` text, ``strptime`` and libphonenumber are not reproduced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from migrationsapp.engine.columnar_regex import rust_pattern, rust_replacement
from migrationsapp.engine.columnar_types import (
    DTYPES,
    INT64_MAX,
    INT64_MIN,
    PY_WHITESPACE,
    PY_WHITESPACE_CLASS,
    Column,
    NoColumnForm,
    common_kind,
    constant,
    either,
    is_ascii,
)
from migrationsapp.engine.patterns import PatternError, parse_replacement
from migrationsapp.engine.value_size import MAX_STRING_LENGTH

Form = Callable[[list[Column], Mapping[str, Column]], Column]

# regex_replace's searches may read REPLACE_SCAN_LIMIT bytes in all (patterns.py): at most
# (n + 2) * (n + 1) for a value of n bytes, so values up to this size can never reach it.
_REGEX_SAFE_BYTES = 17_000


def _only(args: list[Column], keywords: Mapping[str, Column], count: int) -> list[Column]:
    if keywords or len(args) != count:
        raise NoColumnForm("keyword or missing arguments")
    return args


def _text_form(clean: Callable[[pl.Expr], pl.Expr], *, ascii_only: bool) -> Form:
    """trim, lower, upper, collapse_spaces, email, title: text in, text out, None for None."""

    def form(args: list[Column], keywords: Mapping[str, Column]) -> Column:
        (v,) = _only(args, keywords, 1)
        if v.kind == "null":
            return v
        if v.kind != "str":
            raise NoColumnForm("not text")  # the row path fails every such row
        guard = ~is_ascii(v.expr) if ascii_only else None
        return Column(clean(v.expr), "str", either(v.unsure, guard))

    return form


def _strip(expr: pl.Expr) -> pl.Expr:
    return expr.str.strip_chars(PY_WHITESPACE)


def _collapse(expr: pl.Expr) -> pl.Expr:
    return _strip(expr).str.replace_all(PY_WHITESPACE_CLASS + "+", " ")


def _too_long(expr: pl.Expr) -> pl.Expr:
    return (expr.str.len_chars() > MAX_STRING_LENGTH).fill_null(False)


def _str(args: list[Column], keywords: Mapping[str, Column]) -> Column:
    (v,) = _only(args, keywords, 1)
    if v.kind in ("null", "str"):
        too_long = _too_long(v.expr) if v.kind == "str" else None
        return Column(v.expr, v.kind, either(v.unsure, too_long))
    if v.kind == "int":
        return Column(v.expr.cast(pl.String), "str", v.unsure)
    if v.kind == "bool":
        text = pl.when(v.expr).then(pl.lit("true")).otherwise(pl.lit("false"))
        return Column(pl.when(v.expr.is_null()).then(None).otherwise(text), "str", v.unsure)
    raise NoColumnForm("str of a date")


_INT_TEXT = r"^([+-]?[0-9]+)(?:\.0*)?$"


def _to_int(args: list[Column], keywords: Mapping[str, Column]) -> Column:
    (v,) = _only(args, keywords, 1)
    if v.kind in ("null", "int"):
        return v
    if v.kind == "bool":
        return Column(v.expr.cast(pl.Int64), "int", v.unsure)
    if v.kind != "str":
        raise NoColumnForm("to_int of a date")
    digits = _strip(v.expr).str.extract(_INT_TEXT, 1)
    number = digits.cast(pl.Int64, strict=False)
    # No match (the row fails) or past 64 bits (Python's int is unbounded): row-wise.
    unsure = v.expr.is_not_null() & number.is_null()
    return Column(number, "int", either(v.unsure, unsure))


_TRUE_TEXT = ["1", "y", "yes", "true"]
_FALSE_TEXT = ["0", "n", "no", "false"]


def _to_bool(args: list[Column], keywords: Mapping[str, Column]) -> Column:
    (v,) = _only(args, keywords, 1)
    if v.kind in ("null", "bool"):
        return v
    if v.kind == "int":
        value = pl.when(v.expr == 1).then(True).when(v.expr == 0).then(False).otherwise(None)
        return Column(value, "bool", either(v.unsure, v.expr.is_not_null() & value.is_null()))
    if v.kind != "str":
        raise NoColumnForm("to_bool of a date")
    text = _strip(v.expr).str.to_lowercase()
    value = pl.when(text.is_in(_TRUE_TEXT)).then(True).when(text.is_in(_FALSE_TEXT)).then(False)
    value = value.otherwise(None)
    # Non-ASCII text: Python's lower() may fold it onto a word of the lists.
    unsure = v.expr.is_not_null() & (value.is_null() | ~is_ascii(v.expr))
    return Column(value, "bool", either(v.unsure, unsure))


# The legacy_date forms (builtin_functions._LEGACY_DATE), one group set per form, on stripped text.
_P, _Y = "([0-9]{1,2})", "([0-9]{4})"
_LEGACY_FORMS = (
    f"{_Y}-{_P}-{_P}", f"{_Y}/{_P}/{_P}", f"{_Y}\\.{_P}\\.{_P}", f"{_P}/{_P}/{_Y}",
    f"{_P}\\.{_P}\\.{_Y}",
)  # fmt: skip
_LEGACY = "(?s)^(?:" + "|".join(_LEGACY_FORMS) + ")(?:[T\\t\\n\\x0b\\x0c\\r ].*)?$"
# Every form rewritten as YEAR-MONTH-DAY (a group of another form inserts nothing); the
# time part goes with the rest of the match.
_LEGACY_CANONICAL = "${1}${4}${7}${12}${15}-${2}${5}${8}${10}${14}-${3}${6}${9}${11}${13}"


def _legacy_date(args: list[Column], keywords: Mapping[str, Column]) -> Column:
    (v,) = _only(args, keywords, 1)
    if v.kind in ("null", "date"):
        return v
    if v.kind != "str":
        raise NoColumnForm("legacy_date of a number")  # the row path fails every such row
    text = _strip(v.expr)
    matched = text.str.contains(_LEGACY)
    canonical = text.str.replace(_LEGACY, _LEGACY_CANONICAL)
    # Impossible dates parse to null, as the row path makes them None; so does year 0, which
    # Python's dates do not have (polars' do). Blank text is None too.
    real = matched & ~canonical.str.starts_with("0000")
    date = pl.when(real).then(canonical.str.to_date("%Y-%m-%d", strict=False)).otherwise(None)
    unmatched = v.expr.is_not_null() & (text != "") & ~matched
    return Column(date, "date", either(v.unsure, unmatched))


def _map(args: list[Column], keywords: Mapping[str, Column]) -> Column:
    named = dict(keywords)
    names = ("v", "mapping", "default")
    if len(args) > 3 or any(name not in names[len(args) :] for name in named):
        raise NoColumnForm("map's arguments")
    bound = dict(zip(names, args, strict=False)) | named
    v, mapping = bound["v"], bound.get("mapping")
    fallback = bound.get("default", constant(None))
    if mapping is None or not mapping.constant or not isinstance(mapping.value, dict):
        raise NoColumnForm("map without a dict literal")
    if not fallback.constant or v.kind not in ("str", "int", "null"):
        raise NoColumnForm("map's default or value")
    if v.kind == "null":
        return v
    table: dict[Any, Any] = mapping.value
    if v.kind == "int" and any(isinstance(key, bool | float) for key in table):
        raise NoColumnForm("a map whose keys mix numbers")  # 1 == True == 1.0 in a dict
    wanted = str if v.kind == "str" else int
    pairs = [(key, value) for key, value in table.items() if type(key) is wanted]
    outputs = [constant(value) for _, value in pairs] + [fallback]
    kind = common_kind(*outputs)
    if v.kind == "int":
        pairs = [(key, value) for key, value in pairs if INT64_MIN <= key <= INT64_MAX]
    if kind == "null":
        return Column(pl.lit(None), "null", v.unsure)
    dtype = DTYPES[kind]
    if pairs:
        looked_up = v.expr.replace_strict(
            [key for key, _ in pairs],
            [value for _, value in pairs],
            default=pl.lit(fallback.value, dtype=dtype),
            return_dtype=dtype,
        )
    else:
        looked_up = pl.lit(fallback.value, dtype=dtype)
    result = pl.when(v.expr.is_null()).then(pl.lit(None, dtype=dtype)).otherwise(looked_up)
    return Column(result, kind, v.unsure)


def _coalesce(args: list[Column], keywords: Mapping[str, Column]) -> Column:
    if keywords:
        raise NoColumnForm("keywords")
    if not args:
        return constant(None)
    kind = common_kind(*args)
    return Column(pl.coalesce([a.expr for a in args]), kind, either(*(a.unsure for a in args)))


def _default(args: list[Column], keywords: Mapping[str, Column]) -> Column:
    v, d = _only(args, keywords, 2)
    kind = common_kind(v, d)
    empty = v.expr.is_null()
    if v.kind == "str":
        empty = empty | (_strip(v.expr) == "")
    return Column(pl.when(empty).then(d.expr).otherwise(v.expr), kind, either(v.unsure, d.unsure))


def _concat(args: list[Column], keywords: Mapping[str, Column]) -> Column:
    if keywords:
        raise NoColumnForm("keywords")
    parts = []
    for a in args:
        if a.kind == "null":
            continue
        text = _str([a], {}) if a.kind != "str" else a
        parts.append(text.expr.fill_null(""))
    if not parts:
        return Column(pl.lit(""), "str", either(*(a.unsure for a in args)))
    joined = pl.concat_str(parts)
    return Column(joined, "str", either(*(a.unsure for a in args), _too_long(joined)))


def _regex_replace(args: list[Column], keywords: Mapping[str, Column]) -> Column:
    v, pattern, repl = _only(args, keywords, 3)
    if not (pattern.constant and repl.constant):
        raise NoColumnForm("a pattern or replacement computed per row")
    if v.kind == "null":
        return v
    if v.kind != "str" or not isinstance(pattern.value, str) or not isinstance(repl.value, str):
        raise NoColumnForm("not text")
    rust = rust_pattern(pattern.value)
    try:
        replacement = rust_replacement(parse_replacement(repl.value), pattern.value)
    except PatternError:
        replacement = None
    if rust is None or replacement is None:
        raise NoColumnForm("a pattern outside the subset RE2 and Rust read alike")
    result = v.expr.str.replace_all(rust, replacement)
    long_value = (v.expr.str.len_bytes() > _REGEX_SAFE_BYTES).fill_null(False)
    return Column(result, "str", either(v.unsure, long_value, _too_long(result)))


COLUMN_FORMS: dict[str, Form] = {
    "trim": _text_form(_strip, ascii_only=False),
    "lower": _text_form(lambda e: e.str.to_lowercase(), ascii_only=True),
    "upper": _text_form(lambda e: e.str.to_uppercase(), ascii_only=True),
    "collapse_spaces": _text_form(_collapse, ascii_only=False),
    "email": _text_form(lambda e: _strip(e).str.to_lowercase(), ascii_only=True),
    "title": _text_form(lambda e: e.str.to_titlecase(), ascii_only=True),
    "str": _str,
    "to_int": _to_int,
    "to_bool": _to_bool,
    "legacy_date": _legacy_date,
    "map": _map,
    "coalesce": _coalesce,
    "default": _default,
    "concat": _concat,
    "regex_replace": _regex_replace,
}
