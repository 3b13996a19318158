"""The function library as the mapping editor lists it: signature, what it does, an example
and the example's result (computed by the engine once per process, never written by hand)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from migrationsapp.engine.errors import DiffmigError
from migrationsapp.engine.function_reference import REFERENCE, signature
from migrationsapp.engine.transforms import BUILTIN_FUNCTIONS, compile_expression, compile_functions


@dataclass(frozen=True)
class LibraryEntry:
    name: str
    signature: str
    summary: str
    example: str
    result: str


def _result(example: str) -> str:
    try:
        value = compile_expression(example, compile_functions({})).evaluate({})
    except DiffmigError as exc:  # an example that fails shows how it fails
        return f"fails: {exc}"
    return repr(value)


@functools.cache
def function_library() -> tuple[LibraryEntry, ...]:
    """Every builtin function, by name."""
    return tuple(
        LibraryEntry(
            name=name,
            signature=signature(name),
            summary=REFERENCE[name].summary,
            example=REFERENCE[name].example,
            result=_result(REFERENCE[name].example),
        )
        for name in sorted(BUILTIN_FUNCTIONS)
    )
