"""The read path's parts that need no database: keys asked for, content hashes, and the
engine's import graph (the reads never import the handle that carries them)."""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from migrationsapp.engine.errors import TerminalError
from migrationsapp.engine.introspect import ColumnInfo
from migrationsapp.engine.reads_hash import Digest, python_row_hash
from migrationsapp.engine.reads_keys import (
    NoMatch,
    bind_value,
    bound_keys,
    first_column_range,
    identity,
    key_conditions,
)
from migrationsapp.engine.reads_values import row_converter

ENGINE = Path(__file__).resolve().parents[2] / "migrationsapp" / "engine"


def _column(name: str, kind: str, sql_type: str = "") -> ColumnInfo:
    return ColumnInfo(
        name=name,
        kind=kind,
        sql_type=sql_type or kind.upper(),
        nullable=True,
        has_default=False,
        primary_key=False,
    )


def _sql(clause: sa.ColumnElement) -> str:
    return str(clause.compile(compile_kwargs={"literal_binds": True}))


# --- keys -------------------------------------------------------------------------------


def test_a_dense_run_of_integer_keys_is_read_as_one_range_and_a_sparse_one_as_a_list():
    ids = [_column("id", "integer")]
    key = [sa.column("id")]

    dense = [_sql(c) for c in key_conditions(key, ids, [(10,), (11,), (13,)])]
    sparse = [_sql(c) for c in key_conditions(key, ids, [(10,), (100,)])]

    assert dense == ["id BETWEEN 10 AND 13"]
    assert sparse == ["id IN (10, 100)"]


def test_a_dense_run_of_composite_keys_has_a_capped_range_of_its_first_column():
    key = [sa.column("a"), sa.column("b")]
    infos = [_column("a", "integer"), _column("b", "integer")]

    where, cap = first_column_range(key, infos, [(10, 1), (10, 2), (11, 1), (13, 5)])

    assert (_sql(where), cap) == ("a BETWEEN 10 AND 13", 4 * 4)
    assert first_column_range(key, infos, [(1, 1), (100, 1)]) is None  # sparse
    assert first_column_range(key, infos, [(None, 1), (2, 1)]) is None  # NULL: the lists
    assert first_column_range(key[:1], infos[:1], [(1,), (2,)]) is None  # one column
    text_first = [_column("a", "text"), _column("b", "integer")]
    assert first_column_range(key, text_first, [("x", 1), ("y", 1)]) is None


def test_a_null_key_value_is_asked_with_is_null():
    key = [sa.column("a"), sa.column("b")]
    infos = [_column("a", "integer"), _column("b", "text")]

    (where,) = key_conditions(key, infos, [(1, "x"), (2, None)])

    assert _sql(where) == "(a, b) IN ((1, 'x')) OR a = 2 AND b IS NULL"


def test_keys_are_bound_once_and_a_key_no_row_can_hold_is_left_out():
    infos = [_column("id", "integer")]

    wanted, bound = bound_keys("postgresql", infos, [(5,), ("5",), ("five",), (7,)])

    assert bound == [(5,), (7,)]
    assert wanted == {("5",), ("7",)}


def test_integer_keys_given_as_ints_are_bound_as_each_key_on_its_own_would_be():
    infos = [_column("a", "integer"), _column("b", "integer")]
    keys = [(3, 1), (1, 2), (3, 1), (-7, 0)]

    wanted, bound = bound_keys("mysql", infos, keys)

    assert bound == [(3, 1), (1, 2), (-7, 0)]  # in order, each once
    assert wanted == {identity(key) for key in keys}
    # One text form among them: every key goes the general way, with the same outcome.
    assert bound_keys("mysql", infos, [*keys, ("3", "1")]) == (wanted, bound)


def test_a_key_of_the_wrong_length_is_refused():
    for key in [(1, 2), ("1", "2")]:
        with pytest.raises(ValueError, match="does not have 1 values"):
            bound_keys("postgresql", [_column("id", "integer")], [key])


def test_stored_text_forms_bind_as_the_column_type_and_mysql_zero_dates_stay_text():
    assert bind_value("postgresql", _column("n", "numeric"), "12.50") == Decimal("12.50")
    assert bind_value("mysql", _column("b", "boolean"), "yes") == 1
    assert bind_value("mysql", _column("d", "date"), "0000-00-00") == "0000-00-00"
    aware = dt.datetime(2024, 1, 31, 11, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert bind_value("mysql", _column("t", "datetime_tz"), aware) == dt.datetime(2024, 1, 31, 10)
    with pytest.raises(NoMatch):
        bind_value("postgresql", _column("d", "date"), "0000-00-00")


def test_identity_is_the_text_of_each_value_with_null_apart():
    assert identity((1, "a")) == identity(("1", "a"))
    assert identity((None,)) != identity(("None",))
    assert identity((Decimal("1.50"),)) == ("1.50",)


# --- values -----------------------------------------------------------------------------


def test_mysql_values_are_made_regular_and_other_dialects_read_as_they_are():
    columns = [
        _column("flags", "integer", "BIT(8)"),
        _column("at", "time"),
        _column("doc", "json"),
        _column("late", "time"),
    ]
    row = (b"\x01\x02", dt.timedelta(hours=1, minutes=2), '{"a": 1}', dt.timedelta(hours=30))

    assert row_converter("mysql", columns)(row) == (258, dt.time(1, 2), {"a": 1}, "30:00:00")
    assert row_converter("postgresql", columns)(row) == row


# --- hashes -----------------------------------------------------------------------------


def test_the_python_hash_is_md5_over_tagged_length_prefixed_values():
    # The record map keeps these hashes: a change to the encoding would make every row of
    # every SQLite source look modified.
    expected = hashlib.md5(b"i2:12s3:a|bN", usedforsecurity=False).hexdigest()
    assert python_row_hash([12, "a|b", None]) == expected


def test_the_python_hash_tells_types_boundaries_and_null_apart():
    assert python_row_hash([1]) != python_row_hash(["1"])
    assert python_row_hash(["a|b", "c"]) != python_row_hash(["a", "b|c"])
    assert python_row_hash([None]) != python_row_hash(["N"])
    assert python_row_hash([True]) != python_row_hash([1])


def test_a_server_hash_that_came_back_null_refuses_the_key_and_names_the_table():
    digest = Digest([], in_python=False, source="table 'item' of database 'legacy'")

    assert digest.of((7,), ["0cc175b9c0f1b6a831c399e269772661"]) == (
        "0cc175b9c0f1b6a831c399e269772661"
    )
    with pytest.raises(TerminalError, match="table 'item' of database 'legacy': key '7' is too"):
        digest.of((7,), [None])


# --- imports ----------------------------------------------------------------------------


def _engine_imports() -> dict[str, set[str]]:
    """Each engine module's imports of other engine modules (TYPE_CHECKING ones too), by
    dotted name below ``migrationsapp.engine``."""
    modules = {
        ".".join(p.relative_to(ENGINE).with_suffix("").parts).removesuffix(".__init__"): p
        for p in ENGINE.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = ("engine." + name).rpartition(".")[0]
        if path.name == "__init__.py":
            package = "engine." + name
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                module = ".".join(filter(None, [base, node.module or ""]))
                module = module.removeprefix("migrationsapp.")
                candidates = [module, *(f"{module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [a.name.removeprefix("migrationsapp.") for a in node.names]
            else:
                continue
            for candidate in candidates:
                dep = candidate.removeprefix("engine.")
                if candidate.startswith("engine.") and dep in modules and dep != name:
                    found.add(dep)
        graph[name] = found
    return graph


def test_the_engine_has_no_import_cycles():
    graph = _engine_imports()
    # Sanity: the graph sees the imports this test is about.
    assert "reads" in graph["database"] and "database" in graph["connectors"]

    cycles = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
