"""The entities' dependency order (topological, stable) and cycle detection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from migrationsapp.engine.errors import MappingError, MappingProblem

from .spec import EntitySpec


def _order(entities: Sequence[EntitySpec]) -> tuple[list[str], list[str] | None]:
    """(topological order, a cycle or None). Unknown names in depends_on are ignored."""
    names = [e.name for e in entities]
    known = set(names)
    deps = {e.name: [d for d in e.depends_on if d in known] for e in entities}
    placed: list[str] = []
    done: set[str] = set()
    remaining = list(dict.fromkeys(names))
    while remaining:
        # The first entity in file order whose parents are all placed: stable among equals.
        ready = next((n for n in remaining if all(d in done for d in deps[n])), None)
        if ready is None:
            return placed, _find_cycle(remaining, deps, done)
        placed.append(ready)
        done.add(ready)
        remaining.remove(ready)
    return placed, None


def _find_cycle(remaining: list[str], deps: Mapping[str, list[str]], done: set[str]) -> list[str]:
    # Every remaining entity waits on another remaining one, so walking the first unplaced
    # parent from anywhere must come back to a node already seen.
    path: list[str] = []
    node = remaining[0]
    while node not in path:
        path.append(node)
        node = next(d for d in deps[node] if d not in done)
    return [*path[path.index(node) :], node]


def dependency_order(entities: Sequence[EntitySpec]) -> list[str]:
    """Entity names, parents before children, file order among equals; a cycle is refused."""
    order, cycle = _order(entities)
    if cycle is not None:
        raise MappingError([_cycle_problem(cycle)])
    return order


def _cycle_problem(cycle: list[str]) -> MappingProblem:
    return MappingProblem(
        entity=cycle[0], field=None, reason=f"depends_on has a cycle: {' -> '.join(cycle)}"
    )
