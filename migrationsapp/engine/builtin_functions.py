"""The builtin functions of the mapping function library, and the checks of their literal arguments.

These are what a field's ``transform:`` or ``expression:`` may call besides the mapping
file's named functions (docs/mapping.md): text clean-up, conversions, dates, phone numbers
and a few helpers. Every function returns ``None`` for a ``None`` input (except
``coalesce``, ``default`` and ``concat``) and raises ``RowError`` naming itself and the
value it could not handle, so the row is quarantined. ``builtin_call_problem`` refuses at
import a call that can never work (arity, a literal argument no row can make right).
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import phonenumbers
import re2

from migrationsapp.engine.convert import as_bool, as_decimal, as_int, as_text
from migrationsapp.engine.convert import show_value as show
from migrationsapp.engine.errors import RowError
from migrationsapp.engine.expressions import MAX_STRING_LENGTH, UNKNOWN
from migrationsapp.engine.patterns import PatternError, compile_pattern, parse_replacement


def _text_function(name: str, clean: Callable[[str], str]) -> Callable[[Any], str | None]:
    def function(v: Any) -> str | None:
        if v is None:
            return None
        if not isinstance(v, str):
            raise RowError(f"{name}: expected text, got {show(v)}", value=v)
        return clean(v)

    function.__name__ = name
    return function


def _converter(name: str, convert: Callable[[Any], Any], what: str) -> Callable[[Any], Any]:
    def function(v: Any) -> Any:
        if v is None:
            return None
        try:
            return convert(v)
        except (ValueError, TypeError, ArithmeticError):
            raise RowError(f"{name}: {show(v)} is not {what}", value=v) from None

    function.__name__ = name
    return function


def _checked(name: str, text: str) -> str:
    if len(text) > MAX_STRING_LENGTH:
        raise RowError(f"{name}: the result would be longer than {MAX_STRING_LENGTH} characters")
    return text


def parse_date(v: Any, fmt: str) -> dt.date | None:
    """Strict: ``v`` must match the ``strptime`` format exactly."""
    if v is None:
        return None
    if not isinstance(fmt, str):
        raise RowError(f"parse_date: the format must be text, not {show(fmt)}", value=v)
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.datetime.strptime(v, fmt).date()
        except ValueError:
            pass
    raise RowError(f"parse_date: {show(v)} does not match the format {fmt!r}", value=v)


# YYYY-MM-DD (also with / or .), MM/DD/YYYY, DD.MM.YYYY, unpadded, each maybe followed by a
# time part (" 10:30", "T10:30:00"), which is dropped. The shape is checked by RE2, like every
# pattern that reads row values (linear whatever the value); the parts are then split out of
# the ten characters or fewer it let through.
_YEAR, _PART = "[0-9]{4}", "[0-9]{1,2}"
_TIME_STARTS = "T\t\n\v\f\r "
_LEGACY_OPTIONS = re2.Options()
_LEGACY_OPTIONS.dot_nl = True
_LEGACY_OPTIONS.never_capture = True
_LEGACY_DATE = re2.compile(
    (
        f"(?:{_YEAR}(?:-{_PART}-{_PART}|/{_PART}/{_PART}|\\.{_PART}\\.{_PART})"
        f"|{_PART}/{_PART}/{_YEAR}|{_PART}\\.{_PART}\\.{_YEAR})"
        f"(?:[{_TIME_STARTS}].*)?"
    ).encode(),
    _LEGACY_OPTIONS,
)


def _legacy_parts(text: str) -> tuple[int, int, int] | None:
    """(year, month, day) of a legacy date text, or None when it has none of the forms."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if _LEGACY_DATE.fullmatch(data) is None:
        return None
    end = next((i for i, char in enumerate(text) if char in _TIME_STARTS), len(text))
    date = text[:end]
    separator = "-" if "-" in date else "/" if "/" in date else "."
    parts = date.split(separator)
    first, second, third = (int(part) for part in parts)
    if len(parts[0]) == 4:  # YYYY-MM-DD
        return first, second, third
    if separator == "/":
        return third, first, second  # MM/DD/YYYY
    return third, second, first  # DD.MM.YYYY


def legacy_date(v: Any) -> dt.date | None:
    """Lenient: YYYY-MM-DD, MM/DD/YYYY, DD.MM.YYYY, unpadded; zero, empty or impossible -> None."""
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if not isinstance(v, str):
        raise RowError(f"legacy_date: {show(v)} is not a date", value=v)
    text = v.strip()
    if not text:
        return None
    parts = _legacy_parts(text)
    if parts is not None:
        try:
            # MySQL's '0000-00-00' and impossible dates like 2021-02-30 mean "no date".
            return dt.date(*parts)
        except ValueError:
            return None
    raise RowError(
        f"legacy_date: {show(v)} is not a date (expected YYYY-MM-DD, MM/DD/YYYY or DD.MM.YYYY)",
        value=v,
    )


def phone_e164(v: Any, region: str) -> str | None:
    """``v`` in E.164 form (+15555550123); a number libphonenumber finds invalid fails the row."""
    if v is None:
        return None
    if not isinstance(region, str):
        raise RowError(f"phone_e164: the region must be text, not {show(region)}", value=v)
    region = region.strip().upper()
    text = str(v) if isinstance(v, int) and not isinstance(v, bool) else v
    if isinstance(text, str):
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            number = None
        if number is not None and phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise RowError(f"phone_e164: invalid phone number {show(v)} for region {region}", value=v)


def map_value(v: Any, mapping: Mapping[Any, Any], default: Any = None) -> Any:
    """``mapping[v]``, or ``default`` when ``v`` is not a key."""
    if v is None:
        return None
    if not isinstance(mapping, Mapping):
        raise RowError(f"map: the second argument must be a dict, not {show(mapping)}", value=v)
    try:
        return mapping.get(v, default)
    except TypeError:
        raise RowError(f"map: {show(v)} cannot be looked up", value=v) from None


def coalesce(*values: Any) -> Any:
    """The first value that is not None."""
    for v in values:
        if v is not None:
            return v
    return None


def default(v: Any, d: Any) -> Any:
    """``d`` when ``v`` is None or blank text, else ``v``."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return d
    return v


def concat(*values: Any) -> str:
    """The non-None values as text (as ``str()`` renders them), joined without a separator."""
    parts = []
    for v in values:
        if v is not None:
            try:
                parts.append(as_text(v))
            except (ValueError, TypeError):
                raise RowError(f"concat: {show(v)} has no text form", value=v) from None
    return _checked("concat", "".join(parts))


def regex_replace(v: Any, pattern: str, repl: str) -> str | None:
    """Every match of ``pattern`` (RE2 syntax) in ``v`` replaced by ``repl`` (engine.patterns).

    Linear time in ``v``; the result is bounded like any string an expression builds.
    """
    if v is None:
        return None
    if not isinstance(v, str):
        raise RowError(f"regex_replace: expected text, got {show(v)}", value=v)
    if not isinstance(pattern, str) or not isinstance(repl, str):
        raise RowError("regex_replace: the pattern and the replacement must be text", value=v)
    try:
        compiled = compile_pattern(pattern)
    except PatternError as exc:
        raise RowError(f"regex_replace: invalid pattern {pattern!r}: {exc}", value=v) from None
    try:
        replacement = parse_replacement(repl)
    except PatternError as exc:
        raise RowError(f"regex_replace: {exc}", value=v) from None
    try:
        return compiled.replace(v, replacement, max_length=MAX_STRING_LENGTH)
    except PatternError as exc:
        raise RowError(f"regex_replace: {exc}", value=v) from None


BUILTIN_FUNCTIONS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {
        "trim": _text_function("trim", str.strip),
        "lower": _text_function("lower", str.lower),
        "upper": _text_function("upper", str.upper),
        "title": _text_function("title", str.title),
        "collapse_spaces": _text_function("collapse_spaces", lambda v: " ".join(v.split())),
        "email": _text_function("email", lambda v: v.strip().lower()),
        "str": _converter("str", lambda v: _checked("str", as_text(v)), "convertible to text"),
        "to_int": _converter("to_int", as_int, "an integer"),
        "to_decimal": _converter("to_decimal", as_decimal, "a decimal number"),
        "to_bool": _converter(
            "to_bool", as_bool, "a boolean (expected 1/0, Y/N, yes/no or true/false)"
        ),
        "parse_date": parse_date,
        "legacy_date": legacy_date,
        "phone_e164": phone_e164,
        "map": map_value,
        "coalesce": coalesce,
        "default": default,
        "concat": concat,
        "regex_replace": regex_replace,
    }
)
_SIGNATURES = {name: inspect.signature(fn) for name, fn in BUILTIN_FUNCTIONS.items()}


def _literal_text(
    what: str, parse: Callable[[str], object] | None = None, invalid: str = "{exc}"
) -> Callable[[Any], str | None]:
    """A check of a literal argument: text, which ``parse`` (when given) accepts; a refusal
    by ``parse`` is told as ``invalid`` with the value and the parser's reason filled in."""

    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return f"{what} must be text, not {show(v)}"
        if parse is not None:
            try:
                parse(v)
            except PatternError as exc:
                return invalid.format(value=v, exc=exc)
        return None

    return check


def _replacement_fits_pattern(arguments: Mapping[str, Any]) -> str | None:
    pattern, repl = arguments.get("pattern", UNKNOWN), arguments.get("repl", UNKNOWN)
    if pattern is UNKNOWN or repl is UNKNOWN:
        return None
    return parse_replacement(repl).problem(compile_pattern(pattern))


def _literal_region(region: Any) -> str | None:
    known = isinstance(region, str) and region.strip().upper() in phonenumbers.SUPPORTED_REGIONS
    return None if known else f"unknown region {show(region)}"


# Arguments written as literals that can never work are refused at import, not on every row.
_LITERAL_CHECKS: dict[tuple[str, str], Callable[[Any], str | None]] = {
    ("regex_replace", "pattern"): _literal_text(
        "the pattern", compile_pattern, "invalid pattern {value!r}: {exc}"
    ),
    ("regex_replace", "repl"): _literal_text("the replacement", parse_replacement),
    ("parse_date", "fmt"): _literal_text("the format"),
    ("phone_e164", "region"): _literal_region,
    ("map", "mapping"): lambda v: (
        None if isinstance(v, Mapping) else f"the second argument must be a dict, not {show(v)}"
    ),
}
# Checks of literal arguments together, once each one alone passed.
_LITERAL_CALL_CHECKS: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "regex_replace": _replacement_fits_pattern,
}


def builtin_call_problem(name: str, args: Sequence[Any], keywords: Mapping[str, Any]) -> str | None:
    """Why a call of the builtin ``name`` can never work (arity, keywords, a bad literal
    argument), or None; an argument only known per row is ``UNKNOWN``."""
    try:
        bound = _SIGNATURES[name].bind(*args, **keywords)
    except TypeError as exc:
        return f"{name}(): {exc}"
    for param, value in bound.arguments.items():
        check = _LITERAL_CHECKS.get((name, param))
        reason = check(value) if check is not None and value is not UNKNOWN else None
        if reason:
            return f"{name}(): {reason}"
    check_all = _LITERAL_CALL_CHECKS.get(name)
    reason = check_all(bound.arguments) if check_all is not None else None
    return f"{name}(): {reason}" if reason else None
