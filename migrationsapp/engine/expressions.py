"""The safe expression language of mappings: parsed once, compiled to nested closures.

An expression is Python expression syntax cut down to what a field mapping needs: constants,
names, calls of library functions by name, arithmetic, comparisons, ``and``/``or``/``not``,
``x if c else y`` and dict/list/tuple literals. Anything else (attribute access, subscripts,
lambdas, comprehensions, f-strings, ``:=``, ``*args``) is refused when the mapping is
imported, so nothing can reach Python's object model. Nothing is ever ``eval``-ed: each AST
node becomes a small closure, built once, and a row is evaluated by calling the root closure.

Limits keep a hostile or careless expression from eating the worker (there is no timeout:
RQ owns SIGALRM), and each is counted, never timed:

* text length and node count of one expression;
* steps: what one evaluation may run at most, counted at compile time — its own nodes, plus
  all the steps of a named function each time it is called. Chains of named functions that
  call the next one twice grow exponentially and are refused at the first function whose
  count passes ``MAX_STEPS``. Compiling (constant folding included) runs within the same
  count;
* the size of ``**`` and of integers;
* the real size of every value built: text in characters, a list, tuple or dict in elements
  counted in full, nested ones and repeated ones included (``[[1] * 99999] * 99999`` is ten
  billion, not 99999), and its nesting depth. Each is checked before the value is built, so
  that equality, hashing and ``str()`` of any value an expression builds stay bounded.

A part made only of constants is computed at compile time, so ``9**9**9``,
``'a' * 10**9`` or ``str([[1] * 99999] * 99999)`` is refused at import instead of failing
every row.
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
MAX_STEPS = 5000  # per evaluation, named functions counted in full at every call
# How deep one evaluation may nest (parts inside parts, through named functions too): each
# level is a Python call, and Python stops at 1000 of them, counting its caller's.
MAX_NESTING = 300
_CALL_LEVELS = 3  # Python calls a named function adds besides its body (call, __call__, evaluate)
MAX_EXPONENT = 100
MAX_POWER_BITS = 4096  # an integer power stays below 2**4096 (about 1233 digits)
MAX_INT_BITS = 2 * MAX_POWER_BITS  # any integer an expression computes
MAX_STRING_LENGTH = 100_000  # also bounds lists, tuples and bytes built by an expression
MAX_VALUE_SIZE = MAX_STRING_LENGTH  # characters and elements of a value, nested ones included
MAX_VALUE_DEPTH = 20  # lists, tuples and dicts inside one another

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

    def cost(self, name: str) -> tuple[int, int]:
        """(steps, nesting) of one call of ``name``: a named function's own counts; (1, 1) for
        a builtin."""
        ...

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
    steps: int = 1  # the most steps one evaluation takes (see MAX_STEPS)
    nesting: int = 1  # the deepest chain of calls one evaluation makes (see MAX_NESTING)

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


# --- the real size of values ----------------------------------------------------------------

_CONTAINERS = (list, tuple, dict)
# Sizes of containers already measured, by identity. An entry holds its value, so the id
# cannot be reused while it is cached; the cache is small and emptied when full, since the
# values that matter are the ones an evaluation has just built.
_SIZES: dict[int, tuple[Any, int, int]] = {}
_SIZES_KEPT = 32


def _remember(value: Any, size: int, depth: int) -> None:
    if len(_SIZES) >= _SIZES_KEPT:
        _SIZES.clear()
    _SIZES[id(value)] = (value, size, depth)


def _known(value: Any) -> tuple[int, int] | None:
    entry = _SIZES.get(id(value))
    return (entry[1], entry[2]) if entry is not None and entry[0] is value else None


def _too_big(size: int, depth: int) -> RowError | None:
    if size > MAX_VALUE_SIZE:
        return RowError(
            f"the result would hold more than {MAX_VALUE_SIZE} elements and characters "
            "(nested and repeated ones counted)"
        )
    if depth > MAX_VALUE_DEPTH:
        return RowError(f"the result would be nested more than {MAX_VALUE_DEPTH} levels deep")
    return None


def measure(value: Any) -> tuple[int, int]:
    """(size, depth) of a value: characters of text, elements of containers counted in full.

    The walk stops as soon as either passes its limit (the numbers returned are then just
    past it), so measuring costs at most MAX_VALUE_SIZE steps whatever the value shares.
    """
    if isinstance(value, str | bytes):
        return len(value), 0
    if not isinstance(value, _CONTAINERS):
        return 1, 0
    known = _known(value)
    if known is not None:
        return known
    size, deepest = 0, 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_VALUE_DEPTH:
            return size, deepest
        children = (*item.keys(), *item.values()) if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, str | bytes):
                size += max(1, len(child))
            elif isinstance(child, _CONTAINERS):
                cached = _known(child)
                if cached is not None:
                    size += max(1, cached[0])
                    deepest = max(deepest, depth + cached[1])
                elif child:
                    stack.append((child, depth + 1))
                else:  # an empty container counts as one element
                    size += 1
                    deepest = max(deepest, depth + 1)
            else:
                size += 1
        if size > MAX_VALUE_SIZE:
            return size, deepest
    _remember(value, size, deepest)
    return size, deepest


def _container_of(parts: Sequence[Any]) -> tuple[int, int]:
    """(size, depth) of a container holding ``parts``, measured before it is built."""
    size, depth = 0, 0
    for part in parts:
        part_size, part_depth = measure(part)
        size += max(1, part_size)
        depth = max(depth, part_depth)
    return size, depth + 1


def _built(value: Any, size: int, depth: int) -> Any:
    if isinstance(value, _CONTAINERS):
        _remember(value, size, depth)
    return value


def _checked_container(parts: Sequence[Any], build: Callable[[], Any]) -> Any:
    size, depth = _container_of(parts)
    error = _too_big(size, depth)
    if error is not None:
        raise error
    return _built(build(), size, depth)


# --- operators: each raises RowError with a sentence a person can act on -------------------


def _checked_length(result: Any) -> Any:
    if isinstance(result, _SEQUENCES) and len(result) > MAX_STRING_LENGTH:
        raise RowError(f"the result would be longer than {MAX_STRING_LENGTH} characters")
    return result


def _checked_number(result: Any) -> Any:
    if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
        raise RowError(f"the result would be a number of more than {MAX_INT_BITS} bits")
    return result


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, list | tuple) and type(a) is type(b):
        # Checked before it is built: the parts may share (and so hide) a lot of elements.
        (size_a, depth_a), (size_b, depth_b) = measure(a), measure(b)
        size, depth = size_a + size_b, max(depth_a, depth_b)
        error = _too_big(size, depth)
        if error is not None:
            raise error
        return _built(a + b, size, depth)
    # Computing first is safe: the result is at most as long as both inputs together.
    return _checked_number(_checked_length(a + b))


def _mul(a: Any, b: Any) -> Any:
    # Repetition is checked before it happens: 'a' * 10**9 would allocate a gigabyte, and
    # [[1] * 99999] * 99999 holds ten billion elements behind its 99999 references.
    for seq, times in ((a, b), (b, a)):
        if isinstance(seq, _SEQUENCES) and isinstance(times, int):
            count = max(times, 0)
            if len(seq) * count > MAX_STRING_LENGTH:
                raise RowError(f"the result would be longer than {MAX_STRING_LENGTH} characters")
            if isinstance(seq, list | tuple):
                size, depth = measure(seq)
                error = _too_big(size * count, depth)
                if error is not None:
                    raise error
                return _built(seq * count, size * count, depth)
    return _checked_number(a * b)


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


def _sub(a: Any, b: Any) -> Any:
    return _checked_number(a - b)


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _arithmetic("+", _add, "cannot add {a} and {b}"),
    ast.Sub: _arithmetic("-", _sub, "cannot subtract {b} from {a}"),
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
    """Compile a parsed expression; ``text`` is what ``Expression.text`` shows.

    Refuses (ExpressionError) an expression whose evaluation could take more than MAX_STEPS
    steps, before folding any of its constant parts.
    """
    compiler = _Compiler(library, label)
    compiler.count(tree)
    compiled = compiler.compile(tree)
    return Expression(
        text=text,
        names=frozenset(compiler.names),
        _code=compiled.code,
        steps=compiler.steps,
        nesting=compiler.nesting,
    )


# --- the compiler ----------------------------------------------------------------------------


class _Compiler:
    def __init__(self, library: Library, label: str) -> None:
        self.library = library
        self.label = label
        self.names: set[str] = set()
        self.steps = 0
        self.nesting = 0

    def fail(self, reason: str) -> ExpressionError:
        return ExpressionError(f"{self.label}: {reason}")

    def count(self, tree: ast.AST) -> None:
        """Count the steps and the nesting of one evaluation, and refuse either past its limit.

        Every node is a step, and a call of a named function adds all of that function's own
        steps (and nesting) each time. Each named function's counts were taken once, when it
        was compiled, so this is linear in the size of the tree however deep the calls go.
        """
        steps = nesting = 0
        stack: list[tuple[ast.AST, int]] = [(tree, 1)]
        while stack:
            node, depth = stack.pop()
            if isinstance(node, ast.expr):
                steps += 1
                called = (
                    node.func.id
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    else None
                )
                if called is not None and called in self.library:
                    call_steps, call_nesting = self.library.cost(called)
                    steps += call_steps
                    nesting = max(nesting, depth + _CALL_LEVELS + call_nesting)
                nesting = max(nesting, depth)
                depth += 1
            stack.extend((child, depth) for child in ast.iter_child_nodes(node))
        if steps > MAX_STEPS:
            raise self.fail(
                f"one evaluation would take {steps} steps (a named function counts all of its "
                f"own steps at every call); the limit is {MAX_STEPS}"
            )
        if nesting > MAX_NESTING:
            raise self.fail(
                f"one evaluation would nest {nesting} levels deep (parts inside parts, named "
                f"functions calling each other); the limit is {MAX_NESTING}"
            )
        self.steps, self.nesting = steps, nesting

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

        def build(env: Env) -> list[Any]:
            values = [c(env) for c in codes]
            return _checked_container(values, lambda: values)

        return self._fold(build, items)

    def _Tuple(self, node: ast.Tuple) -> _Compiled:
        items = [self.compile(item) for item in node.elts]
        codes = tuple(item.code for item in items)

        def build(env: Env) -> tuple[Any, ...]:
            values = tuple(c(env) for c in codes)
            return _checked_container(values, lambda: values)

        return self._fold(build, items)

    def _Dict(self, node: ast.Dict) -> _Compiled:
        if any(key is None for key in node.keys):
            raise self.fail("dict unpacking (`**`) is not allowed")
        keys = [self.compile(key) for key in node.keys if key is not None]
        values = [self.compile(value) for value in node.values]
        pairs = tuple((k.code, v.code) for k, v in zip(keys, values, strict=True))

        def build(env: Env) -> dict[Any, Any]:
            items = [(k(env), v(env)) for k, v in pairs]
            # Measured before hashing: a key's hash reads all of it.
            parts = [part for item in items for part in item]
            try:
                return _checked_container(parts, lambda: dict(items))
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
