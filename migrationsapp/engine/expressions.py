"""The safe expression language of mappings: parsed once, compiled to nested closures.

An expression is Python expression syntax cut down to what a field mapping needs: constants,
names, calls of library functions by name, arithmetic, comparisons, ``and``/``or``/``not``,
``x if c else y`` and dict/list/tuple literals. Anything else (attribute access, subscripts,
lambdas, comprehensions, f-strings, ``:=``, ``*args``) is refused when the mapping is
imported, so nothing can reach Python's object model. Nothing is ever ``eval``-ed: each AST
node becomes a small closure, built once, and a row is evaluated by calling the root closure.

Limits keep a hostile or careless expression from eating the worker (there is no timeout:
RQ owns SIGALRM): text length, node count, the size of ``**``, and the length of any string
or list built. A part made only of constants is computed at compile time, so ``9**9**9``
or ``'a' * 10**9`` is refused at import instead of failing every row.
"""

from __future__ import annotations

import ast
import operator
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from migrationsapp.engine.convert import show_value as show
from migrationsapp.engine.errors import ExpressionError, RowError

MAX_EXPRESSION_LENGTH = 2000
MAX_NODES = 200
MAX_EXPONENT = 100
MAX_POWER_BITS = 4096  # an integer power stays below 2**4096 (about 1233 digits)
MAX_STRING_LENGTH = 100_000  # also bounds lists, tuples and bytes built by an expression

Env = Mapping[str, Any]
Code = Callable[[Env], Any]

# Stands for an argument whose value is only known per row, in Library.check_call.
UNKNOWN: Any = type("Unknown", (), {"__repr__": lambda self: "UNKNOWN"})()

_NO_VARIABLES: Mapping[str, Any] = {}
_SEQUENCES = (str, bytes, list, tuple)


class Library(Protocol):
    """What the compiler needs from a function library."""

    def __contains__(self, name: str) -> bool: ...

    def function(self, name: str) -> Callable[..., Any]: ...

    def check_call(self, name: str, args: Sequence[Any], keywords: Mapping[str, Any]) -> str | None:
        """Why this call can never work (arity, a bad literal argument), or None."""
        ...


@dataclass(frozen=True, slots=True, eq=False)
class Expression:
    """A compiled expression: immutable, reusable, safe to share between threads.

    Equality is identity: the same text compiled against another library is another function.
    A list or dict written only with constants is built once and shared: treat results as
    read-only.
    """

    text: str
    names: frozenset[str]  # the variables it reads (columns or parameters), not function names
    _code: Code = field(repr=False)

    def evaluate(self, variables: Env) -> Any:
        """The value for one row; a missing name or a failing operation raises RowError."""
        try:
            return self._code(variables)
        except RowError:
            raise
        except Exception as exc:  # a case the per-node handling missed must fail only the row
            raise RowError(f"expression {self.text!r} failed: {exc}") from exc


class _Compiled(NamedTuple):
    code: Code
    constant: bool
    value: Any = None


def _constant(value: Any) -> _Compiled:
    return _Compiled(lambda env: value, True, value)


# --- operators: each raises RowError with a sentence a person can act on -------------------


def _checked_length(result: Any) -> Any:
    if isinstance(result, _SEQUENCES) and len(result) > MAX_STRING_LENGTH:
        raise RowError(f"the result would be longer than {MAX_STRING_LENGTH} characters")
    return result


def _add(a: Any, b: Any) -> Any:
    # Computing first is safe: the result is at most as long as both inputs together.
    return _checked_length(a + b)


def _mul(a: Any, b: Any) -> Any:
    # Repetition is checked before it happens: 'a' * 10**9 would allocate a gigabyte.
    for seq, times in ((a, b), (b, a)):
        if (
            isinstance(seq, _SEQUENCES)
            and isinstance(times, int)
            and len(seq) * max(times, 0) > MAX_STRING_LENGTH
        ):
            raise RowError(f"the result would be longer than {MAX_STRING_LENGTH} characters")
    return a * b


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str | bytes):
        # '%999999999d' % 1 would allocate before any check could run.
        raise RowError("the % operator does not format text here; use concat() or str()")
    return a % b


def _pow(base: Any, exponent: Any) -> Any:
    numbers = int | float | Decimal
    if isinstance(base, numbers) and isinstance(exponent, numbers):
        if abs(exponent) > MAX_EXPONENT:
            raise RowError(f"exponent {show(exponent)} is larger than {MAX_EXPONENT}")
        if (
            isinstance(base, int)
            and isinstance(exponent, int)
            and base.bit_length() * exponent > MAX_POWER_BITS
        ):
            raise RowError(f"{show(base)} ** {show(exponent)} would be too large")
    result = base**exponent
    if isinstance(result, complex):
        raise RowError(f"{show(base)} ** {show(exponent)} is not a real number")
    return result


def _arithmetic(symbol: str, fn: Callable[[Any, Any], Any], type_error: str) -> Callable:
    def apply(a: Any, b: Any) -> Any:
        try:
            return fn(a, b)
        except TypeError:
            raise RowError(type_error.format(a=show(a), b=show(b)), value=a) from None
        except ZeroDivisionError:
            raise RowError(f"division by zero: {show(a)} {symbol} {show(b)}", value=a) from None
        except (ArithmeticError, ValueError) as exc:  # OverflowError, decimal signals
            raise RowError(f"{show(a)} {symbol} {show(b)} failed: {exc}", value=a) from None

    return apply


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _arithmetic("+", _add, "cannot add {a} and {b}"),
    ast.Sub: _arithmetic("-", operator.sub, "cannot subtract {b} from {a}"),
    ast.Mult: _arithmetic("*", _mul, "cannot multiply {a} by {b}"),
    ast.Div: _arithmetic("/", operator.truediv, "cannot divide {a} by {b}"),
    ast.FloorDiv: _arithmetic("//", operator.floordiv, "cannot divide {a} by {b}"),
    ast.Mod: _arithmetic("%", _mod, "cannot take {a} modulo {b}"),
    ast.Pow: _arithmetic("**", _pow, "cannot raise {a} to the power {b}"),
}
_OPERATOR_TEXT = {
    ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^",
    ast.BitAnd: "&", ast.Invert: "~",
}  # fmt: skip


def _comparison(symbol: str, fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        try:
            return fn(a, b)
        except TypeError:
            raise RowError(f"cannot compare {show(a)} {symbol} {show(b)}", value=a) from None

    return apply


# == and != never raise; `is` is allowed only against None, so its right side is not read.
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
    ast.Lt: _comparison("<", operator.lt), ast.LtE: _comparison("<=", operator.le),
    ast.Gt: _comparison(">", operator.gt), ast.GtE: _comparison(">=", operator.ge),
    ast.In: _comparison("in", lambda a, b: a in b),
    ast.NotIn: _comparison("not in", lambda a, b: a not in b),
    ast.Is: lambda a, b: a is None, ast.IsNot: lambda a, b: a is not None,
}  # fmt: skip


def _unary(fn: Callable[[Any], Any], message: str) -> Callable[[Any], Any]:
    def apply(a: Any) -> Any:
        try:
            return fn(a)
        except TypeError:
            raise RowError(message.format(a=show(a)), value=a) from None

    return apply


_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: _unary(operator.neg, "cannot negate {a}"),
    ast.UAdd: _unary(operator.pos, "cannot apply unary + to {a}"),
    ast.Not: operator.not_,
}
_REFUSED = {
    ast.Subscript: "a subscript (`x[...]`)", ast.Slice: "a slice", ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a comprehension",
    ast.JoinedStr: "an f-string", ast.FormattedValue: "an f-string",
    ast.NamedExpr: "an assignment expression (`:=`)", ast.Starred: "a starred argument (`*x`)",
    ast.Set: "a set literal (use a tuple)", ast.Await: "await", ast.Yield: "yield",
    ast.YieldFrom: "yield",
}  # fmt: skip


# --- parsing ---------------------------------------------------------------------------------


def parse_expression(text: str, *, label: str) -> ast.expr:
    """Parse and size-check ``text``; ``label`` starts every error message."""
    if not isinstance(text, str):
        raise ExpressionError(f"{label}: must be text, not {type(text).__name__}")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"{label}: is {len(text)} characters long; the limit is {MAX_EXPRESSION_LENGTH}"
        )
    if not text.strip():
        raise ExpressionError(f"{label}: is empty")
    try:
        with warnings.catch_warnings():
            # '\d+' in a pattern is an "invalid escape" to Python but exactly what the user meant.
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{label}: does not parse: {exc.msg} (column {exc.offset})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"{label}: does not parse: {exc}") from None
    nodes = sum(1 for node in ast.walk(tree) if isinstance(node, ast.expr | ast.keyword))
    if nodes > MAX_NODES:
        raise ExpressionError(f"{label}: has {nodes} parts; the limit is {MAX_NODES}")
    return tree.body


def called_functions(tree: ast.AST) -> set[str]:
    """The names of the functions a parsed expression calls by name."""
    return {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }


def compile_tree(tree: ast.expr, *, text: str, library: Library, label: str) -> Expression:
    """Compile a parsed expression; ``text`` is what ``Expression.text`` shows."""
    compiler = _Compiler(library, label)
    compiled = compiler.compile(tree)
    return Expression(text=text, names=frozenset(compiler.names), _code=compiled.code)


# --- the compiler ----------------------------------------------------------------------------


class _Compiler:
    def __init__(self, library: Library, label: str) -> None:
        self.library = library
        self.label = label
        self.names: set[str] = set()

    def fail(self, reason: str) -> ExpressionError:
        return ExpressionError(f"{self.label}: {reason}")

    def compile(self, node: ast.AST) -> _Compiled:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.fail(f"{self._describe(node)} is not allowed")
        return method(node)

    def _describe(self, node: ast.AST) -> str:
        if isinstance(node, ast.Attribute):
            return f"attribute access (`.{node.attr}`)"
        return _REFUSED.get(type(node), f"`{type(node).__name__}`")

    def _fold(self, code: Code, parts: Sequence[_Compiled]) -> _Compiled:
        """Compute a part made only of constants now; its failure is the expression's."""
        if not all(part.constant for part in parts):
            return _Compiled(code, False)
        try:
            return _constant(code(_NO_VARIABLES))
        except RowError as exc:
            raise self.fail(f"always fails: {exc.reason}") from None
        except Exception as exc:
            raise self.fail(f"always fails: {exc}") from None

    def _Constant(self, node: ast.Constant) -> _Compiled:
        if node.value is not None and type(node.value) not in (str, int, float, bool):
            raise self.fail(f"constants of type {type(node.value).__name__} are not allowed")
        return _constant(node.value)

    def _Name(self, node: ast.Name) -> _Compiled:
        name = node.id
        self.names.add(name)

        def load(env: Env) -> Any:
            try:
                return env[name]
            except KeyError:
                raise RowError(f"unknown name {name!r}") from None

        return _Compiled(load, False)

    def _BinOp(self, node: ast.BinOp) -> _Compiled:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise self.fail(f"operator `{_OPERATOR_TEXT[type(node.op)]}` is not allowed")
        left, right = self.compile(node.left), self.compile(node.right)
        lf, rf = left.code, right.code
        return self._fold(lambda env: op(lf(env), rf(env)), [left, right])

    def _UnaryOp(self, node: ast.UnaryOp) -> _Compiled:
        op = _UNARY.get(type(node.op))
        if op is None:
            raise self.fail(f"operator `{_OPERATOR_TEXT[type(node.op)]}` is not allowed")
        operand = self.compile(node.operand)
        of = operand.code
        return self._fold(lambda env: op(of(env)), [operand])

    def _BoolOp(self, node: ast.BoolOp) -> _Compiled:
        parts = [self.compile(value) for value in node.values]
        codes = tuple(part.code for part in parts)
        stop_when = isinstance(node.op, ast.Or)  # `or` stops at the first truthy value

        def code(env: Env) -> Any:
            result = None
            for part in codes:
                result = part(env)
                if bool(result) is stop_when:
                    return result
            return result

        return self._fold(code, parts)

    def _Compare(self, node: ast.Compare) -> _Compiled:
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot) and not (
                isinstance(right, ast.Constant) and right.value is None
            ):
                raise self.fail("`is` is allowed only as `is None` / `is not None`")
        left = self.compile(node.left)
        rights = [self.compile(right) for right in node.comparators]
        lf = left.code
        steps = tuple(
            (_COMPARE[type(op)], right.code) for op, right in zip(node.ops, rights, strict=True)
        )
        if len(steps) == 1:
            ((op, rf),) = steps
            return self._fold(lambda env: op(lf(env), rf(env)), [left, *rights])

        def chain(env: Env) -> Any:  # a < b < c: each side evaluated once, stops at False
            a = lf(env)
            for op, rf in steps:
                b = rf(env)
                if not op(a, b):
                    return False
                a = b
            return True

        return self._fold(chain, [left, *rights])

    def _IfExp(self, node: ast.IfExp) -> _Compiled:
        test, body, orelse = (self.compile(n) for n in (node.test, node.body, node.orelse))
        if test.constant:
            return body if test.value else orelse
        tf, bf, of = test.code, body.code, orelse.code
        return _Compiled(lambda env: bf(env) if tf(env) else of(env), False)

    def _List(self, node: ast.List) -> _Compiled:
        items = [self.compile(item) for item in node.elts]
        codes = tuple(item.code for item in items)
        return self._fold(lambda env: [c(env) for c in codes], items)

    def _Tuple(self, node: ast.Tuple) -> _Compiled:
        items = [self.compile(item) for item in node.elts]
        codes = tuple(item.code for item in items)
        return self._fold(lambda env: tuple(c(env) for c in codes), items)

    def _Dict(self, node: ast.Dict) -> _Compiled:
        if any(key is None for key in node.keys):
            raise self.fail("dict unpacking (`**`) is not allowed")
        keys = [self.compile(key) for key in node.keys if key is not None]
        values = [self.compile(value) for value in node.values]
        pairs = tuple((k.code, v.code) for k, v in zip(keys, values, strict=True))

        def build(env: Env) -> dict[Any, Any]:
            try:
                return {k(env): v(env) for k, v in pairs}
            except TypeError as exc:  # an unhashable key
                raise RowError(f"a dict key cannot be used: {exc}") from None

        return self._fold(build, [*keys, *values])

    def _Call(self, node: ast.Call) -> _Compiled:
        if not isinstance(node.func, ast.Name):
            raise self.fail(
                f"only library functions may be called, by name; {self._describe(node.func)}"
                " is not allowed"
            )
        name = node.func.id
        if name not in self.library:
            raise self.fail(f"unknown function {name!r}")
        if any(kw.arg is None for kw in node.keywords):
            raise self.fail("a `**` argument is not allowed")
        args = [self.compile(arg) for arg in node.args]
        keywords = {kw.arg: self.compile(kw.value) for kw in node.keywords if kw.arg}
        problem = self.library.check_call(
            name,
            [a.value if a.constant else UNKNOWN for a in args],
            {k: v.value if v.constant else UNKNOWN for k, v in keywords.items()},
        )
        if problem:
            raise self.fail(problem)
        return self._fold(
            _call_code(name, self.library.function(name), args, keywords),
            [*args, *keywords.values()],
        )


def _call_failed(name: str, exc: Exception, value: Any) -> RowError:
    return RowError(f"{name}: failed on {show(value)}: {exc}", value=value)


def _call_code(
    name: str, fn: Callable[..., Any], args: list[_Compiled], keywords: dict[str, _Compiled]
) -> Code:
    arg_codes = tuple(a.code for a in args)
    kw_codes = tuple((k, v.code) for k, v in keywords.items())
    if len(arg_codes) == 1 and not kw_codes:  # the common case, trim(value): no list building
        (only,) = arg_codes

        def call_one(env: Env) -> Any:
            value = only(env)
            try:
                return fn(value)
            except RowError:
                raise
            except Exception as exc:  # library functions raise RowError; this is the safety net
                raise _call_failed(name, exc, value) from exc

        return call_one

    def call(env: Env) -> Any:
        values = [c(env) for c in arg_codes]
        named = {k: c(env) for k, c in kw_codes} if kw_codes else {}
        try:
            return fn(*values, **named)
        except RowError:
            raise
        except Exception as exc:
            raise _call_failed(name, exc, values[0] if values else None) from exc

    return call
