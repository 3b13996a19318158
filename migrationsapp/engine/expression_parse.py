"""Reading an expression's text: parsed with its size limits, the functions it calls by name,
and the names a mistyped one might have meant.

What the parsed tree may hold is the compiler's to decide (``expression_compiler.py``).
"""

from __future__ import annotations

import ast
import difflib
import warnings
from collections.abc import Iterable

from migrationsapp.engine.errors import ExpressionError

MAX_EXPRESSION_LENGTH = 2000
MAX_NODES = 200


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


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``; did you mean `title`?`` for the known names closest to a mistyped ``name``, or ""."""
    names = sorted(set(known))
    # Case first: `Title` is `title` mistyped, however far difflib finds the two.
    close = [k for k in names if k.lower() == name.lower()]
    if not close and len(name) >= 3:
        # A close call only: a two-letter name or a word like `eval` suggests nothing useful.
        close = difflib.get_close_matches(name, names, n=2, cutoff=0.75)
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"`{k}`" for k in close) + "?"
