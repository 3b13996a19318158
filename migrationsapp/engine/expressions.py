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

This module is the way in (``compile_tree``) and the compiled ``Expression``; reading the
text is ``expression_parse.py``'s, turning the tree into closures ``expression_compiler.py``'s.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from migrationsapp.engine.errors import RowError
from migrationsapp.engine.expression_compiler import MAX_NESTING as MAX_NESTING
from migrationsapp.engine.expression_compiler import MAX_STEPS as MAX_STEPS
from migrationsapp.engine.expression_compiler import UNKNOWN as UNKNOWN
from migrationsapp.engine.expression_compiler import Code, Compiler, Env
from migrationsapp.engine.expression_compiler import Library as Library
from migrationsapp.engine.expression_parse import MAX_EXPRESSION_LENGTH as MAX_EXPRESSION_LENGTH
from migrationsapp.engine.expression_parse import MAX_NODES as MAX_NODES
from migrationsapp.engine.expression_parse import called_functions as called_functions
from migrationsapp.engine.expression_parse import did_you_mean as did_you_mean
from migrationsapp.engine.expression_parse import parse_expression as parse_expression
from migrationsapp.engine.operators import MAX_EXPONENT as MAX_EXPONENT
from migrationsapp.engine.operators import MAX_INT_BITS as MAX_INT_BITS
from migrationsapp.engine.operators import MAX_POWER_BITS as MAX_POWER_BITS
from migrationsapp.engine.value_size import MAX_STRING_LENGTH as MAX_STRING_LENGTH
from migrationsapp.engine.value_size import MAX_VALUE_DEPTH as MAX_VALUE_DEPTH
from migrationsapp.engine.value_size import MAX_VALUE_SIZE as MAX_VALUE_SIZE
from migrationsapp.engine.value_size import measure as measure


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


def compile_tree(tree: ast.expr, *, text: str, library: Library, label: str) -> Expression:
    """Compile a parsed expression; ``text`` is what ``Expression.text`` shows.

    Refuses (ExpressionError) an expression whose evaluation could take more than MAX_STEPS
    steps, before folding any of its constant parts.
    """
    compiler = Compiler(library, label)
    compiler.count(tree)
    compiled = compiler.compile(tree)
    return Expression(
        text=text,
        names=frozenset(compiler.names),
        _code=compiled.code,
        steps=compiler.steps,
        nesting=compiler.nesting,
    )
