"""An expression's syntax tree compiled into one polars expression over a batch's columns.

The tree is the one ``expressions.parse_expression`` checked at import; every node becomes a
``Column`` (engine.columnar_types) or raises NoColumnForm, and then the field runs row-wise.
Parts made only of constants are computed by the row compiler itself (the same values and
the same refusals); named functions are inlined with their keyword arguments; library calls
go to their column forms (engine.columnar_functions). Operators follow Python's rules for the
kinds they accept and mark unsure the rows where Python raises or polars could differ: a
None operand of arithmetic or ordering, a zero divisor, 64-bit overflow, text past the
length limit. ``and``, ``or``, ``x if c else y`` and chained comparisons only count a part's
unsure rows where Python evaluates that part.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping

import polars as pl

from migrationsapp.engine.columnar_functions import COLUMN_FORMS
from migrationsapp.engine.columnar_types import (
    INT64_MAX,
    INT64_MIN,
    Column,
    NoColumnForm,
    common_kind,
    constant,
    either,
    truthy,
    when_also,
)
from migrationsapp.engine.errors import ExpressionError, RowError
from migrationsapp.engine.expressions import Library, compile_tree, parse_expression
from migrationsapp.engine.value_size import MAX_STRING_LENGTH

# Operands of + and - below this size cannot overflow 64 bits; of *, below the square root.
_ADD_LIMIT = 2**62
_MUL_LIMIT = 2**31
_ORDERED = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge"}


def _has_names(node: ast.AST) -> bool:
    return any(isinstance(child, ast.Name) for child in ast.walk(node))


def _outside(expr: pl.Expr, limit: int) -> pl.Expr:
    return (expr >= limit) | (expr <= -limit)


class ColumnCompiler:
    """Compiles syntax trees against a library, named function bodies parsed once."""

    def __init__(self, library: Library, bodies: Callable[[str], str | None]) -> None:
        self.library = library
        self._bodies = bodies  # a named function's expression text, None for a builtin
        self._trees: dict[str, ast.expr] = {}

    def compile(self, node: ast.AST, env: Mapping[str, Column]) -> Column:
        if not _has_names(node):
            return self._constant(node)
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise NoColumnForm(type(node).__name__)
        return method(node, env)

    def _constant(self, node: ast.AST) -> Column:
        assert isinstance(node, ast.expr)
        try:
            compiled = compile_tree(node, text="", library=self.library, label="constant")
            return constant(compiled.evaluate({}))
        except (ExpressionError, RowError):
            raise NoColumnForm("a constant part that fails") from None

    def _Name(self, node: ast.Name, env: Mapping[str, Column]) -> Column:
        try:
            return env[node.id]
        except KeyError:
            raise NoColumnForm(f"unknown name {node.id!r}") from None

    def _Call(self, node: ast.Call, env: Mapping[str, Column]) -> Column:
        if not isinstance(node.func, ast.Name):
            raise NoColumnForm("a call of something but a name")
        name = node.func.id
        args = [self.compile(arg, env) for arg in node.args]
        keywords = {kw.arg: self.compile(kw.value, env) for kw in node.keywords if kw.arg}
        body = self._bodies(name)
        if body is not None:
            if args:
                raise NoColumnForm("a named function called with positional arguments")
            return self.compile(self._tree(name, body), keywords)
        form = COLUMN_FORMS.get(name)
        if form is None:
            raise NoColumnForm(f"{name} has no column form")
        if any(a.kind == "container" for a in args[:1]):
            raise NoColumnForm("a list as a value")
        return form(args, keywords)

    def body_tree(self, name: str) -> ast.expr | None:
        """A named function's body as a tree; None for a library function."""
        body = self._bodies(name)
        return self._tree(name, body) if body is not None else None

    def _tree(self, name: str, body: str) -> ast.expr:
        tree = self._trees.get(name)
        if tree is None:
            tree = self._trees[name] = parse_expression(body, label=f"function {name!r}")
        return tree

    def _BinOp(self, node: ast.BinOp, env: Mapping[str, Column]) -> Column:
        a, b = self.compile(node.left, env), self.compile(node.right, env)
        missing = either(a.unsure, b.unsure, a.expr.is_null() | b.expr.is_null())
        op = type(node.op)
        if a.kind == b.kind == "str" and op is ast.Add:
            joined = a.expr + b.expr
            too_long = (joined.str.len_chars() > MAX_STRING_LENGTH).fill_null(False)
            return Column(joined, "str", either(missing, too_long))
        if not a.kind == b.kind == "int":
            raise NoColumnForm("arithmetic on these types")
        x, y = a.expr, b.expr
        if op in (ast.Add, ast.Sub):
            result = x + y if op is ast.Add else x - y
            guard = _outside(x, _ADD_LIMIT) | _outside(y, _ADD_LIMIT)
        elif op is ast.Mult:
            result, guard = x * y, _outside(x, _MUL_LIMIT) | _outside(y, _MUL_LIMIT)
        elif op in (ast.FloorDiv, ast.Mod):
            result = x // y if op is ast.FloorDiv else x % y
            guard = (y == 0) | _outside(x, _ADD_LIMIT)  # zero fails; MIN // -1 overflows
        else:
            raise NoColumnForm("/ and ** have no column form")
        return Column(result, "int", either(missing, guard.fill_null(False)))

    def _UnaryOp(self, node: ast.UnaryOp, env: Mapping[str, Column]) -> Column:
        a = self.compile(node.operand, env)
        if isinstance(node.op, ast.Not):
            if a.kind == "container":
                raise NoColumnForm("not of a list")
            return Column(~truthy(a), "bool", a.unsure)
        if a.kind != "int":
            raise NoColumnForm("unary minus or plus on this type")
        missing = a.expr.is_null()
        if isinstance(node.op, ast.USub):
            return Column(-a.expr, "int", either(a.unsure, missing | _outside(a.expr, _ADD_LIMIT)))
        return Column(a.expr, "int", either(a.unsure, missing))

    def _BoolOp(self, node: ast.BoolOp, env: Mapping[str, Column]) -> Column:
        parts = [self.compile(value, env) for value in node.values]
        kind = common_kind(*parts)
        stop_on_true = isinstance(node.op, ast.Or)
        result = parts[-1]
        for part in reversed(parts[:-1]):
            stops = truthy(part) if stop_on_true else ~truthy(part)
            expr = pl.when(stops).then(part.expr).otherwise(result.expr)
            result = Column(expr, kind, either(part.unsure, when_also(~stops, result.unsure)))
        return result

    def _IfExp(self, node: ast.IfExp, env: Mapping[str, Column]) -> Column:
        test = self.compile(node.test, env)
        body, orelse = self.compile(node.body, env), self.compile(node.orelse, env)
        kind = common_kind(body, orelse)
        if test.kind == "container":
            raise NoColumnForm("a list as a condition")
        chosen = truthy(test)
        unsure = either(
            test.unsure, when_also(chosen, body.unsure), when_also(~chosen, orelse.unsure)
        )
        return Column(pl.when(chosen).then(body.expr).otherwise(orelse.expr), kind, unsure)

    def _Compare(self, node: ast.Compare, env: Mapping[str, Column]) -> Column:
        left = self.compile(node.left, env)
        unsure = left.unsure
        result: pl.Expr | None = None
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.compile(right_node, env)
            value, own = _compare(type(op), left, right)
            reached = result if result is not None else pl.lit(True)  # earlier ones all true
            unsure = either(unsure, when_also(reached, either(right.unsure, own)))
            result = value if result is None else (result & value)
            left = right
        assert result is not None
        return Column(result.fill_null(False), "bool", unsure)


def _as_int(column: Column) -> pl.Expr:
    return column.expr.cast(pl.Int64) if column.kind in ("bool", "null") else column.expr


def _compare(op: type[ast.cmpop], a: Column, b: Column) -> tuple[pl.Expr, pl.Expr | None]:
    """One comparison: its value (never null on sure rows) and the rows where it raises."""
    if "container" in (a.kind, b.kind) and op not in (ast.In, ast.NotIn):
        raise NoColumnForm("comparing lists")
    if op in (ast.Is, ast.IsNot):
        return (a.expr.is_null() if op is ast.Is else a.expr.is_not_null()), None
    if op in (ast.Eq, ast.NotEq):
        if a.kind == b.kind or "null" in (a.kind, b.kind):
            x, y = a.expr, b.expr
        elif {a.kind, b.kind} == {"int", "bool"}:
            x, y = _as_int(a), _as_int(b)  # True == 1 in Python
        else:  # values of different types are never equal; two Nones are
            both_null = a.expr.is_null() & b.expr.is_null()
            return (both_null if op is ast.Eq else ~both_null), None
        return (x.eq_missing(y) if op is ast.Eq else x.ne_missing(y)), None
    if op in _ORDERED:
        kinds = {a.kind, b.kind}
        if "null" in kinds or len(kinds - {"bool"} if "int" in kinds else kinds) > 1:
            raise NoColumnForm("ordering values of different types")
        x, y = (_as_int(a), _as_int(b)) if "int" in kinds else (a.expr, b.expr)
        value = getattr(x, _ORDERED[op])(y)
        return value, a.expr.is_null() | b.expr.is_null()
    return _membership(op is ast.NotIn, a, b)


def _membership(negate: bool, a: Column, b: Column) -> tuple[pl.Expr, pl.Expr | None]:
    if b.kind == "str" and a.kind == "str":
        value = b.expr.str.contains(a.expr, literal=True)
        raises = a.expr.is_null() | b.expr.is_null()
    elif b.kind == "container" and isinstance(b.value, list | tuple) and a.kind in ("str", "int"):
        wanted = str if a.kind == "str" else int
        if a.kind == "int" and any(isinstance(item, bool | float) for item in b.value):
            raise NoColumnForm("membership among mixed numbers")  # 1 == True == 1.0
        items = [item for item in b.value if type(item) is wanted]
        if a.kind == "int":  # a Python integer past 64 bits equals no value of the column
            items = [item for item in items if INT64_MIN <= item <= INT64_MAX]
        has_none = any(item is None for item in b.value)
        found = a.expr.is_in(items) if items else pl.lit(False)
        value = pl.when(a.expr.is_null()).then(pl.lit(has_none)).otherwise(found)
        raises = None
    else:
        raise NoColumnForm("membership on these types")
    return (~value if negate else value), raises
