"""The function library of mappings: named functions, and compiling transforms and expressions.

The library is the builtin functions (``builtin_functions.py``) plus the mapping file's
named functions (its ``functions:``). Named functions are expressions too; each sees only
its keyword parameters, the free names of its body, and is called with keywords only. The
expression language itself lives in ``expressions.py``.
"""

from __future__ import annotations

import functools
import keyword
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from migrationsapp.engine.builtin_functions import BUILTIN_FUNCTIONS, builtin_call_problem
from migrationsapp.engine.errors import ExpressionError, RowError
from migrationsapp.engine.expressions import (
    Expression,
    called_functions,
    compile_tree,
    parse_expression,
)

__all__ = [
    "BUILTIN_FUNCTIONS",
    "Expression",
    "FunctionLibrary",
    "compile_expression",
    "compile_functions",
    "compile_library",
    "compile_transform",
    "transform_source",
]


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
        return builtin_call_problem(name, args, keywords)


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
