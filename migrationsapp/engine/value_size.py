"""The real size of values an expression builds: characters of text, elements of containers
counted in full (nested and repeated ones included), and nesting depth.

``[[1] * 99999] * 99999`` is ninety-nine thousand references to one list, but ``str()`` of it,
comparing it or hashing it reads ten billion elements. Every container an expression builds
is measured before it exists, so no value it holds can make equality, hashing or ``str()``
run for minutes. Measuring stops as soon as a limit is passed, and containers already
measured are remembered by identity, so a chain of operations does not measure its
operands again and again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from migrationsapp.engine.errors import RowError

MAX_STRING_LENGTH = 100_000  # also bounds lists, tuples and bytes built by an expression
MAX_VALUE_SIZE = MAX_STRING_LENGTH  # characters and elements of a value, nested ones included
MAX_VALUE_DEPTH = 20  # lists, tuples and dicts inside one another

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


def too_big(size: int, depth: int) -> RowError | None:
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


def container_of(parts: Sequence[Any]) -> tuple[int, int]:
    """(size, depth) of a container holding ``parts``, measured before it is built."""
    size, depth = 0, 0
    for part in parts:
        part_size, part_depth = measure(part)
        size += max(1, part_size)
        depth = max(depth, part_depth)
    return size, depth + 1


def built(value: Any, size: int, depth: int) -> Any:
    if isinstance(value, _CONTAINERS):
        _remember(value, size, depth)
    return value


def checked_container(parts: Sequence[Any], build: Callable[[], Any]) -> Any:
    size, depth = container_of(parts)
    error = too_big(size, depth)
    if error is not None:
        raise error
    return built(build(), size, depth)
