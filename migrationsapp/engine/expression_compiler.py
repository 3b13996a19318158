"""Compiling a parsed expression into nested closures: one method per node the language
allows, steps and nesting counted before anything is built, constant parts computed once.

``expressions.compile_tree`` is the way in; the limits are explained in ``expressions.py``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from migrationsapp.engine.convert import show_value as show
from migrationsapp.engine.errors import ExpressionError, RowError
from migrationsapp.engine.expression_parse import did_you_mean
from migrationsapp.engine.operators import BINARY, COMPARE, OPERATOR_TEXT, UNARY
from migrationsapp.engine.value_size import checked_container

MAX_STEPS = 5000  # per evaluation, named functions counted in full at every call
# How deep one evaluation may nest (parts inside parts, through named functions too): each
# level is a Python call, and Python stops at 1000 of them, counting its caller's.
MAX_NESTING = 300
_CALL_LEVELS = 3  # Python calls a named function adds besides its body (call, __call__, evaluate)

Env = Mapping[str, Any]
Code = Callable[[Env], Any]

# Stands for an argument whose value is only known per row, in Library.check_call.
UNKNOWN: Any = type("Unknown", (), {"__repr__": lambda self: "UNKNOWN"})()

_NO_VARIABLES: Mapping[str, Any] = {}


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


class _Compiled(NamedTuple):
    code: Code
    constant: bool
    value: Any = None


def _constant(value: Any) -> _Compiled:
    return _Compiled(lambda env: value, True, value)


_REFUSED = {
    ast.Subscript: "a subscript (`x[...]`)", ast.Slice: "a slice", ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a comprehension",
    ast.JoinedStr: "an f-string", ast.FormattedValue: "an f-string",
    ast.NamedExpr: "an assignment expression (`:=`)", ast.Starred: "a starred argument (`*x`)",
    ast.Set: "a set literal (use a tuple)", ast.Await: "await", ast.Yield: "yield",
    ast.YieldFrom: "yield",
}  # fmt: skip


class Compiler:
    """Compiles one expression: ``count`` first, then ``compile`` the tree; ``names``,
    ``steps`` and ``nesting`` are what it found."""

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
        op = BINARY.get(type(node.op))
        if op is None:
            raise self.fail(f"operator `{OPERATOR_TEXT[type(node.op)]}` is not allowed")
        left, right = self.compile(node.left), self.compile(node.right)
        lf, rf = left.code, right.code
        return self._fold(lambda env: op(lf(env), rf(env)), [left, right])

    def _UnaryOp(self, node: ast.UnaryOp) -> _Compiled:
        op = UNARY.get(type(node.op))
        if op is None:
            raise self.fail(f"operator `{OPERATOR_TEXT[type(node.op)]}` is not allowed")
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
            (COMPARE[type(op)], right.code) for op, right in zip(node.ops, rights, strict=True)
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
            return checked_container(values, lambda: values)

        return self._fold(build, items)

    def _Tuple(self, node: ast.Tuple) -> _Compiled:
        items = [self.compile(item) for item in node.elts]
        codes = tuple(item.code for item in items)

        def build(env: Env) -> tuple[Any, ...]:
            values = tuple(c(env) for c in codes)
            return checked_container(values, lambda: values)

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
                return checked_container(parts, lambda: dict(items))
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
            known = getattr(self.library, "names", ())
            raise self.fail(f"unknown function {name!r}{did_you_mean(name, known)}")
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
