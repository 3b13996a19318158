"""Fast source reads: the driver choice, its fallback, and key ranges instead of key lists.

* Runs read MariaDB with mysqlclient where it is installed and fall back to PyMySQL: a
  baseline and a differential run give the same destination with either (the fallback stays
  tested whatever the machine has installed), and each driver lets a stream be abandoned or
  lose its connection as the engine expects. Where mysqlclient cannot be imported, ``auto``
  reads with PyMySQL and forcing mysqlclient is refused in one line.
* ``fetch_rows`` reads a dense run of integer keys (a baseline's batch) as one bound
  ``BETWEEN`` and keeps only the keys asked for; a composite key with a dense run of integer
  first values as one capped ``BETWEEN`` on that column, and as IN lists when the range holds
  more than the cap; sparse, text or NULL keys are read as IN lists, as before.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from migrationsapp.engine.connectors import ConnectionSpec, Database, open_database
from migrationsapp.engine.errors import SourceUnavailableError
from migrationsapp.models.choices import SessionStatus
from migrationsapp.services.runs import RunOptions, run_session
from tests.databases import (
    create_mysql_database,
    create_postgres_database,
    drop_mysql_database,
    drop_postgres_database,
    engine_for,
    mysql_admin_url,
    services_policy,
)
from tests.support.groups_items import expected_destination, groups_items_in
from tests.support.reliability import record

pytestmark = pytest.mark.services

DRIVERS = {"pymysql": "pymysql", "mysqlclient": "mysqldb"}


# --- fixtures ---------------------------------------------------------------------------


def _fill(url: str, *statements: str) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


VISITS = "CREATE TABLE visits (patient INT, seq INT, label VARCHAR(20), PRIMARY KEY (patient, seq))"
KEYED = (
    "CREATE TABLE keyed (id INT PRIMARY KEY, label VARCHAR(20))",
    "CREATE TABLE pair_keyed (a INT, b VARCHAR(5), label VARCHAR(20), PRIMARY KEY (a, b))",
)


@pytest.fixture(scope="module")
def mysql_url() -> Iterator[str]:
    url = create_mysql_database("fast_reads")
    _fill(
        url,
        *KEYED,
        "INSERT INTO keyed SELECT seq, CONCAT('row ', seq) FROM seq_1_to_300",
        "INSERT INTO keyed VALUES (-5, 'minus five'), (1000000, 'far')",
        "INSERT INTO pair_keyed VALUES (1, 'a', 'one a'), (1, 'b', 'one b'), (2, 'a', 'two a')",
        VISITS,
        # Every patient 1..200 has visits 1 and 2; patient 150 has 50.
        "INSERT INTO visits SELECT p.seq, v.seq, CONCAT(p.seq, '/', v.seq) "
        "FROM seq_1_to_200 p, seq_1_to_2 v",
        "INSERT INTO visits SELECT 150, seq, CONCAT('150/', seq) FROM seq_3_to_50",
        "CREATE TABLE wide (id INT PRIMARY KEY, v VARCHAR(100))",
        "INSERT INTO wide SELECT seq, REPEAT('v', 100) FROM seq_1_to_50000",
    )
    yield url
    drop_mysql_database(url)


@pytest.fixture(scope="module")
def postgresql_url() -> Iterator[str]:
    url = create_postgres_database("fast_reads")
    _fill(
        url,
        *KEYED,
        "INSERT INTO keyed SELECT n, 'row ' || n FROM generate_series(1, 300) AS n",
        "INSERT INTO keyed VALUES (-5, 'minus five'), (1000000, 'far')",
    )
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("fast_reads") / "legacy.sqlite3"
    url = f"sqlite:///{path}"
    _fill(
        url,
        KEYED[0],
        *(f"INSERT INTO keyed VALUES ({n}, 'row {n}')" for n in range(1, 301)),
        "INSERT INTO keyed VALUES (-5, 'minus five'), (1000000, 'far')",
    )
    return url


def _open(url: str, root: pathlib.Path, monkeypatch, driver: str = "auto") -> Database:
    with monkeypatch.context() as patched:
        patched.setenv("DIFFMIG_MYSQL_DRIVER", driver)
        return open_database(ConnectionSpec(name="legacy", url=url), services_policy(root))


@pytest.fixture
def statements() -> Iterator[list[tuple[str, object]]]:
    """Every statement (and its parameters) that engines run while the test goes on."""
    seen: list[tuple[str, object]] = []

    def note(_conn, _cursor, statement, parameters, _context, _many) -> None:
        seen.append((statement, parameters))

    event.listen(sa.Engine, "before_cursor_execute", note)
    yield seen
    event.remove(sa.Engine, "before_cursor_execute", note)


def _reads_of(statements: list[tuple[str, object]], table: str) -> list[tuple[str, object]]:
    return [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT") and table in s]


# --- fetch by key range -----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["mysql", "postgresql", "sqlite"])
def test_a_dense_run_of_integer_keys_is_read_as_one_range(
    backend, request, tmp_path, monkeypatch, statements
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    db = _open(url, tmp_path if backend != "sqlite" else pathlib.Path(url[10:]).parent, monkeypatch)
    try:
        # 40..200 without every third key: the rows in between are read and dropped. Keys
        # come typed and in their stored text form, repeated, and one is not in the table.
        wanted = [(k,) for k in range(40, 201) if k % 3]
        keys = [*wanted, ("41",), (41,), (199,)]
        statements.clear()
        found = db.fetch_rows("keyed", ["id"], keys, ["label"])
    finally:
        db.close()
    assert found == {(k,): {"label": f"row {k}"} for (k,) in wanted}
    reads = _reads_of(statements, "keyed")
    assert len(reads) == 1, reads
    assert "BETWEEN" in reads[0][0].upper()
    assert sorted(_values(reads[0][1])) == [40, 200]


def _values(parameters: object) -> list:
    if isinstance(parameters, dict):
        return list(parameters.values())
    return list(parameters or ())


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        # Sparse: the range would be 300 times the keys asked for.
        ([(1,), (300,)], {(1,): "row 1", (300,): "row 300"}),
        # Far apart, negative, and a key no row has.
        (
            [(-5,), (1000000,), (7,), (8,)],
            {(-5,): "minus five", (1000000,): "far", (7,): "row 7", (8,): "row 8"},
        ),
        # Not integers: the list reads them and finds none.
        ([("7.5",), ("x",)], {}),
    ],
)
def test_sparse_or_odd_keys_are_read_as_a_list(
    keys, expected, mysql_url, tmp_path, monkeypatch, statements
) -> None:
    db = _open(mysql_url, tmp_path, monkeypatch)
    try:
        statements.clear()
        found = db.fetch_rows("keyed", ["id"], keys, ["label"])
    finally:
        db.close()
    assert {k: v["label"] for k, v in found.items()} == expected
    assert all("BETWEEN" not in s.upper() for s, _ in _reads_of(statements, "keyed"))


def test_composite_keys_keep_exact_matches_only(mysql_url, tmp_path, monkeypatch) -> None:
    db = _open(mysql_url, tmp_path, monkeypatch)
    try:
        asked = [(1, "a"), (1, "B"), (2, "a "), (3, "a")]
        found = db.fetch_rows("pair_keyed", ["a", "b"], asked, ["label"])
        hashes = db.fetch_key_hashes("keyed", ["id"], ["label"], [(k,) for k in range(10, 30)])
    finally:
        db.close()
    # The collation holds 'b' = 'B' and 'a' = 'a ': only the exact key comes back.
    assert found == {(1, "a"): {"label": "one a"}}
    assert sorted(hashes) == [(k,) for k in range(10, 30)]


def test_a_dense_run_of_composite_keys_is_read_as_one_range_of_their_first_column(
    mysql_url, tmp_path, monkeypatch, statements
) -> None:
    db = _open(mysql_url, tmp_path, monkeypatch)
    try:
        wanted = [(p, v) for p in range(10, 61) for v in (1, 2) if (p, v) != (20, 2)]
        statements.clear()
        found = db.fetch_rows("visits", ["patient", "seq"], [*wanted, (61, 9)], ["label"])
    finally:
        db.close()
    assert found == {(p, v): {"label": f"{p}/{v}"} for p, v in wanted}
    (read,) = _reads_of(statements, "visits")
    assert "BETWEEN" in read[0].upper()
    assert " IN " not in read[0].upper()


def test_a_first_column_range_holding_far_more_rows_than_asked_is_read_as_lists(
    mysql_url, tmp_path, monkeypatch, statements
) -> None:
    """Patient 150 has 50 visits: a range over 149..151 would read 54 rows for 3 keys."""
    db = _open(mysql_url, tmp_path, monkeypatch)
    try:
        statements.clear()
        found = db.fetch_rows(
            "visits", ["patient", "seq"], [(149, 1), (150, 7), (151, 2)], ["label"]
        )
    finally:
        db.close()
    assert found == {
        (149, 1): {"label": "149/1"},
        (150, 7): {"label": "150/7"},
        (151, 2): {"label": "151/2"},
    }
    ranged, listed = _reads_of(statements, "visits")
    assert "BETWEEN" in ranged[0].upper()
    assert " IN " in listed[0].upper()


# --- the driver and its fallback --------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_each_driver_lets_a_stream_be_abandoned(driver, mysql_url, tmp_path, monkeypatch) -> None:
    db = _open(mysql_url, tmp_path, monkeypatch, driver)
    try:
        assert db.engine.dialect.driver == DRIVERS[driver]
        stream = db.stream_rows("wide", ["id", "v"], batch_size=100)
        assert len(next(stream)) == 100
        stream.close()
        assert db.count_rows("wide") == 50_000
        rows = sum(len(batch) for batch in db.stream_rows("wide", ["id"], batch_size=10_000))
        assert rows == 50_000
    finally:
        db.close()


def _kill_connections_to(database: str) -> None:
    engine = engine_for(make_url(mysql_admin_url()).set(database="mysql").render_as_string(False))
    try:
        with engine.connect() as conn:
            ids = conn.execute(
                sa.text(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :db "
                    "AND ID <> CONNECTION_ID()"
                ),
                {"db": database},
            ).scalars()
            for thread_id in list(ids):
                conn.exec_driver_sql(f"KILL CONNECTION {int(thread_id)}")
    finally:
        engine.dispose()


@pytest.mark.parametrize("driver", DRIVERS)
def test_each_driver_reports_a_cut_stream_as_source_unavailable(
    driver, mysql_url, tmp_path, monkeypatch
) -> None:
    db = _open(mysql_url, tmp_path, monkeypatch, driver)
    try:
        stream = db.stream_key_hashes("wide", ["id"], ["v"], batch_size=1000)
        assert len(next(stream)) == 1000
        _kill_connections_to(make_url(mysql_url).database or "")
        with pytest.raises(SourceUnavailableError, match="database 'legacy'"):
            for _ in stream:
                pass
        assert db.count_rows("wide") == 50_000  # the pool recovers
    finally:
        db.close()
    record(
        "faults",
        f"source connection killed mid-stream ({driver})",
        tried=1,
        held=1,
        outcome="SourceUnavailableError naming the connection; the next read succeeds",
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("driver", DRIVERS)
def test_runs_give_the_same_destination_with_either_driver(driver, mysql_to_pg, monkeypatch):
    monkeypatch.setenv("DIFFMIG_MYSQL_DRIVER", driver)
    with groups_items_in(mysql_to_pg) as pair:
        pair.add_groups({g: f" group {g} " for g in range(1, 6)})
        pair.add_items({i: (1 + i % 5, f" item {i} ", i) for i in range(1, 401)})
        session = run_session(options=RunOptions(baseline=True, batch_size=64))
        assert session.overall_status == SessionStatus.COMPLETED, session.error_summary
        rows, uuids = pair.destination()
        assert rows == expected_destination(pair.source)

        # A differential run: scattered keys (read as lists) and a new dense run (a range).
        pair.update_items({k: (2, f"changed {k}", -k) for k in (3, 97, 250, 399)})
        pair.delete_items([10, 11, 300])
        pair.add_items({i: (None, f"new {i}", None) for i in range(1000, 1100)})
        session = run_session(options=RunOptions(batch_size=64))
        assert session.overall_status == SessionStatus.COMPLETED, session.error_summary
        rows_after, uuids_after = pair.destination()
    assert rows_after == expected_destination(pair.source)
    kept = set(uuids["item"]) & set(uuids_after["item"])
    assert len(kept) == 397
    assert all(uuids["item"][k] == uuids_after["item"][k] for k in kept)


_WITHOUT_MYSQLCLIENT = """
import json, pathlib, sys
sys.modules["MySQLdb"] = None  # as on a machine where mysqlclient could not be built
from migrationsapp.engine.connectors import ConnectionPolicy, ConnectionSpec, open_database
from migrationsapp.engine.errors import ConfigurationError
url, root, driver = sys.argv[1:]
policy = ConnectionPolicy(allowed_hosts=("127.0.0.1", "localhost"), sqlite_root=pathlib.Path(root))
try:
    db = open_database(ConnectionSpec(name="legacy", url=url), policy)
except ConfigurationError as exc:
    print(json.dumps({"refused": str(exc), "hint": exc.hint}))
    raise SystemExit(0)
rows = db.fetch_rows("keyed", ["id"], [(k,) for k in range(1, 101)], ["label"])
print(json.dumps({"driver": db.engine.dialect.driver, "rows": len(rows)}))
"""


@pytest.mark.parametrize(
    ("driver", "expected"),
    [
        ("auto", {"driver": "pymysql", "rows": 100}),
        ("pymysql", {"driver": "pymysql", "rows": 100}),
        (
            "mysqlclient",
            {
                "refused": "connection 'legacy': DIFFMIG_MYSQL_DRIVER=mysqlclient, but "
                "mysqlclient cannot be imported here",
                "hint": "Install it (pip install 'diffmig[fast]', which needs the MariaDB/MySQL "
                "client headers and a compiler), or set DIFFMIG_MYSQL_DRIVER=auto.",
            },
        ),
    ],
)
def test_without_mysqlclient_reads_fall_back_to_pymysql(driver, expected, mysql_url, tmp_path):
    env = {**os.environ, "DIFFMIG_MYSQL_DRIVER": driver}
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_MYSQLCLIENT, mysql_url, str(tmp_path), driver],
        capture_output=True,
        text=True,
        env=env,
        cwd=pathlib.Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected
