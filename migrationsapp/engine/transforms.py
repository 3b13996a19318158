"""The function library of mappings, and compiling transforms, expressions and named functions.

The library is what a field's ``transform:`` or ``expression:`` may call (docs/mapping.md):
text clean-up, conversions, dates, phone numbers and a few helpers. Every function returns
``None`` for a ``None`` input (except ``coalesce``, ``default`` and ``concat``) and raises
``RowError`` naming itself and the value it could not handle, so the row is quarantined.

Named functions (the mapping file's ``functions:``) are expressions too; each sees only its
keyword parameters, the free names of its body, and is called with keywords only. The
expression language itself lives in ``expressions.py``.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import keyword
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import phonenumbers
import re2

from migrationsapp.engine.convert import as_bool, as_decimal, as_int, as_text
from migrationsapp.engine.convert import show_value as show
from migrationsapp.engine.errors import ExpressionError, RowError
from migrationsapp.engine.expressions import (
    MAX_STRING_LENGTH,
    UNKNOWN,
    Expression,
    called_functions,
    compile_tree,
    parse_expression,
)
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


def _literal_text(what: str) -> Callable[[Any], str | None]:
    return lambda v: None if isinstance(v, str) else f"{what} must be text, not {show(v)}"


def _literal_pattern(pattern: Any) -> str | None:
    if not isinstance(pattern, str):
        return f"the pattern must be text, not {show(pattern)}"
    try:
        compile_pattern(pattern)
    except PatternError as exc:
        return f"invalid pattern {pattern!r}: {exc}"
    return None


def _literal_replacement(repl: Any) -> str | None:
    if not isinstance(repl, str):
        return f"the replacement must be text, not {show(repl)}"
    try:
        parse_replacement(repl)
    except PatternError as exc:
        return str(exc)
    return None


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
    ("regex_replace", "pattern"): _literal_pattern,
    ("regex_replace", "repl"): _literal_replacement,
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


class _NamedFunction:
    """A user's named function: its body evaluated with exactly its keyword parameters."""

    __slots__ = ("expression", "name", "params")

    def __init__(self, name: str, expression: Expression) -> None:
        self.name = name
        self.expression = expression
        self.params = expression.names

    def usage(self) -> str:
        return f"{self.name}({', '.join(f'{p}=…' for p in sorted(self.params))})"

    def problem(self, nargs: int, keywords: Sequence[str]) -> str | None:
        if nargs:
            return f"{self.name}() takes keyword arguments only: {self.usage()}"
        missing = sorted(self.params - set(keywords))
        unknown = sorted(set(keywords) - self.params)
        if unknown:
            return f"{self.name}() has no parameter {', '.join(unknown)}: {self.usage()}"
        if missing:
            return f"{self.name}() is missing {', '.join(missing)}: {self.usage()}"
        return None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs.keys() != self.params:
            raise RowError(self.problem(len(args), list(kwargs)) or f"{self.name}() bad call")
        return self.expression.evaluate(kwargs)


class FunctionLibrary:
    """The builtin functions plus a mapping file's named functions."""

    def __init__(self) -> None:
        self._functions: dict[str, Callable[..., Any]] = dict(BUILTIN_FUNCTIONS)
        self._named: dict[str, _NamedFunction] = {}
        self.names: frozenset[str] = frozenset(self._functions)

    def _register(self, function: _NamedFunction) -> None:
        # Only compile_library calls this, while it builds the library (it sets `names` once
        # at the end: rebuilding the set at every function would be quadratic).
        self._functions[function.name] = function
        self._named[function.name] = function

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def function(self, name: str) -> Callable[..., Any]:
        """The callable behind ``name``; an unknown name raises ExpressionError."""
        try:
            return self._functions[name]
        except KeyError:
            raise ExpressionError(f"unknown function {name!r}") from None

    def cost(self, name: str) -> tuple[int, int]:
        """(steps, nesting) of one call: a named function's counts (MAX_STEPS, MAX_NESTING);
        (1, 1) for a builtin."""
        named = self._named.get(name)
        return (named.expression.steps, named.expression.nesting) if named else (1, 1)

    def body(self, name: str) -> str | None:
        """A named function's expression text; None for a builtin."""
        named = self._named.get(name)
        return named.expression.text if named else None

    def parameters(self, name: str) -> frozenset[str] | None:
        """A named function's keyword parameters; None for a builtin."""
        named = self._named.get(name)
        return named.params if named else None

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a function directly; a failure raises RowError as inside an expression."""
        fn = self.function(name)
        try:
            return fn(*args, **kwargs)
        except RowError:
            raise
        except Exception as exc:
            raise RowError(f"{name}: {exc}", value=args[0] if args else None) from exc

    def check_call(self, name: str, args: Sequence[Any], keywords: Mapping[str, Any]) -> str | None:
        """Why a call can never work (arity, keywords, a bad literal argument), or None."""
        named = self._named.get(name)
        if named is not None:
            return named.problem(len(args), list(keywords))
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


def _find_cycle(calls: Mapping[str, set[str]]) -> list[str] | None:
    """A cycle among named functions, as a path whose first and last names are the same.

    A depth-first walk with its own stack: a chain of thousands of functions must not hit
    Python's recursion limit, and each function is visited once.
    """
    done: set[str] = set()
    for root in calls:
        if root in done:
            continue
        path, on_path = [root], {root: 0}
        pending = [iter(sorted(calls[root]))]
        while pending:
            callee = next(pending[-1], None)
            if callee is None:
                finished = path.pop()
                del on_path[finished]
                done.add(finished)
                pending.pop()
            elif callee in on_path:
                return [*path[on_path[callee] :], callee]
            elif callee not in done:
                on_path[callee] = len(path)
                path.append(callee)
                pending.append(iter(sorted(calls[callee])))
    return None


def _callees_first(calls: Mapping[str, set[str]]) -> list[str]:
    """Every name once, each after the functions it calls (a call back into the path of the
    walk, that is a cycle, is skipped: the cycle is reported on its own)."""
    order: list[str] = []
    placed: set[str] = set()
    for root in calls:
        if root in placed:
            continue
        placed.add(root)
        stack = [(root, iter(sorted(calls[root])))]
        while stack:
            name, callees = stack[-1]
            callee = next(callees, None)
            if callee is None:
                order.append(name)
                stack.pop()
            elif callee not in placed:
                placed.add(callee)
                stack.append((callee, iter(sorted(calls[callee]))))
    return order


def compile_library(
    definitions: Mapping[str, str],
) -> tuple[FunctionLibrary, list[ExpressionError]]:
    """The library with every named function that compiles, and an error for each problem.

    Linear in the number of functions: each is parsed, checked and compiled once, callees
    first, and a function's step count (MAX_STEPS) is taken from its callees' counts. A
    function that calls a refused one is refused too ("unknown function").
    """
    key = _definitions_key(definitions)
    if key is None:
        return _build_library(definitions)
    library, errors = _cached_library(key)
    return library, [ExpressionError(str(error)) for error in errors]


def _definitions_key(definitions: Mapping[str, str]) -> tuple[tuple[str, str], ...] | None:
    items = tuple(definitions.items())
    if all(isinstance(name, str) and isinstance(text, str) for name, text in items):
        return items
    return None


@functools.lru_cache(maxsize=16)
def _cached_library(
    items: tuple[tuple[str, str], ...],
) -> tuple[FunctionLibrary, tuple[ExpressionError, ...]]:
    # The same functions are compiled for every entity of a mapping and by every check;
    # a library never changes once built, so it is shared.
    library, errors = _build_library(dict(items))
    return library, tuple(errors)


def _build_library(definitions: Mapping[str, str]) -> tuple[FunctionLibrary, list[ExpressionError]]:
    errors: list[ExpressionError] = []
    trees = {}
    for name, text in definitions.items():
        try:
            if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
                raise ExpressionError(f"function {name!r}: a function name must be an identifier")
            if name in BUILTIN_FUNCTIONS:
                raise ExpressionError(
                    f"function {name!r}: shadows the library function of that name; rename it"
                )
            trees[name] = parse_expression(text, label=f"function {name!r}")
        except ExpressionError as exc:
            errors.append(exc)
    calls = {name: called_functions(tree) & trees.keys() for name, tree in trees.items()}
    cycle = _find_cycle(calls)
    if cycle:
        errors.append(
            ExpressionError(f"named functions call each other in a cycle: {' -> '.join(cycle)}")
        )
    library = FunctionLibrary()
    refused = set(definitions) - trees.keys()
    blocked: list[str] = []  # refused only because a function they call is refused
    for name in _callees_first(calls):
        if calls[name] & refused:
            refused.add(name)
            blocked.append(name)
            continue
        try:
            expression = compile_tree(
                trees[name], text=definitions[name], library=library, label=f"function {name!r}"
            )
        except ExpressionError as exc:
            refused.add(name)
            if not cycle or name not in cycle:  # a function of the cycle: said once, above
                errors.append(exc)
            continue
        library._register(_NamedFunction(name, expression))
    if blocked:
        errors.append(ExpressionError(_blocked_message(blocked, calls, refused)))
    library.names = frozenset(library._functions)
    return library, errors


def _blocked_message(blocked: list[str], calls: Mapping[str, set[str]], refused: set[str]) -> str:
    """One line for every function refused because it calls a refused one (a long chain
    above one bad function would otherwise fill the screen)."""
    first = blocked[0]
    callee = sorted(calls[first] & refused)[0]
    if len(blocked) == 1:
        return f"function {first!r}: calls {callee!r}, which is refused"
    shown = ", ".join(repr(name) for name in blocked[:3])
    more = f" and {len(blocked) - 3} more" if len(blocked) > 3 else ""
    return f"functions {shown}{more} call refused functions (first: {first!r} calls {callee!r})"


def compile_functions(definitions: Mapping[str, str]) -> FunctionLibrary:
    """The library with the mapping file's named functions compiled in (callees first).

    Raises the first problem as an ExpressionError (``compile_library`` collects them all).
    """
    library, errors = compile_library(definitions)
    if errors:
        raise errors[0]
    return library


def _label(kind: str, text: Any) -> str:
    shown = text if not isinstance(text, str) or len(text) <= 80 else text[:79] + "…"
    return f"{kind} {shown!r}"


def compile_expression(text: str, library: FunctionLibrary) -> Expression:
    """An ``expression:`` field; its ``names`` are the source columns it reads."""
    label = _label("expression", text)
    return compile_tree(
        parse_expression(text, label=label), text=text, library=library, label=label
    )


def transform_source(text: str, library: FunctionLibrary) -> str:
    """The expression a ``transform:`` stands for: a bare function name ``trim`` means
    ``trim(value)``, a one-parameter named function ``f`` means ``f(param=value)``."""
    bare = text.strip() if isinstance(text, str) else ""
    if bare.isidentifier() and not keyword.iskeyword(bare) and bare != "value":
        if bare not in library:
            raise ExpressionError(f"{_label('transform', text)}: unknown function {bare!r}")
        params = library.parameters(bare)
        # A one-parameter named function reads naturally as a bare name too.
        if params is not None and len(params) == 1:
            return f"{bare}({next(iter(params))}=value)"
        return f"{bare}(value)"
    return text


def compile_transform(text: str, library: FunctionLibrary) -> Expression:
    """A ``transform:`` field: a bare function name ``trim`` means ``trim(value)``."""
    label = _label("transform", text)
    source = transform_source(text, library)
    expression = compile_tree(
        parse_expression(source, label=label), text=text, library=library, label=label
    )
    others = sorted(expression.names - {"value"})
    if others:
        raise ExpressionError(f"{label}: a transform sees only `value`, not {', '.join(others)}")
    return expression
