"""A run that cannot open its connections ends `failed` with the reason, on both executors.

A two-entity legacy database (offices, and doctors that reference them) is imported while
both databases answer; then the URL behind `${DIFFMIG_LEGACY_URL}` or `${DIFFMIG_TARGET_URL}`
is pointed somewhere that cannot be opened — a port where nothing listens (a database that
is down), a wrong password, a database that does not exist — and a run is launched. The
session and its entities must end `failed` (never stay `running`), the reason must be in
the session's error summary and its log, and once the URL is right again a new run is not
blocked and migrates everything.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from migrationsapp.models import MigrationControl, MigrationExecutionLog, MigrationStatus
from migrationsapp.models.choices import EntityState, LogLevel, SessionStatus
from migrationsapp.services.runs import RunOptions, start_run
from tests.databases import engine_for
from tests.integration.conftest import cli
from tests.support.reliability import record
from tests.support.scratch_pair import import_mapping_file
from tests.support.workers import jobs_on_redis, wait_until, workers

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ENTITIES = """\
  - name: office
    source_table: offices
    source_key: [id]
    destination_table: office
    destination_key: id
    fields:
      - {source: id, destination: legacy_id}
      - {source: name, destination: name}
  - name: doctor
    source_table: doctors
    source_key: [id]
    destination_table: doctor
    destination_key: id
    depends_on: [office]
    fields:
      - {source: name, destination: name}
      - {source: office_id, destination: office_id, reference: office}
"""


def free_port() -> int:
    """A local port nothing listens on (bound, then released): a database that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def broken(url: str, how: str) -> str:
    """``url`` made impossible to open in one of the ways a real deployment breaks
    (``unset``: the variable is removed instead)."""
    parsed = sa.make_url(url)
    if how == "down":
        return parsed.set(port=free_port()).render_as_string(hide_password=False)
    if how == "password":
        # root@127.0.0.1 on MariaDB and postgres on PostgreSQL (trust) have no password:
        # an unknown user with one is refused the same way a wrong password is.
        return parsed.set(username="diffmig_nobody", password="wrong").render_as_string(
            hide_password=False
        )
    if how == "unset":
        return ""  # the variable the mapping names is not set in this process
    if how == "database":
        return parsed.set(database="diffmig_t_no_such_database").render_as_string(
            hide_password=False
        )
    raise ValueError(how)


@pytest.fixture
def offices(mysql_to_pg, tmp_path) -> Iterator[tuple[str, str]]:
    legacy_url, target_url = mysql_to_pg
    legacy, target = engine_for(legacy_url), engine_for(target_url)
    with legacy.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE offices (id INT PRIMARY KEY, name VARCHAR(40))")
        conn.exec_driver_sql(
            "CREATE TABLE doctors (id INT PRIMARY KEY, name VARCHAR(40), office_id INT)"
        )
        conn.exec_driver_sql("INSERT INTO offices VALUES (1, 'North'), (2, 'South')")
        conn.exec_driver_sql("INSERT INTO doctors VALUES (10, 'Ada', 1), (11, 'Bo', 2)")
    with target.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE office (id uuid PRIMARY KEY, legacy_id integer, name text)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE doctor (id uuid PRIMARY KEY, name text, "
            "office_id uuid REFERENCES office (id))"
        )
    legacy.dispose()
    target.dispose()
    import_mapping_file(tmp_path / "offices.yaml", ENTITIES)
    yield legacy_url, target_url


def assert_failed_with_reason(session_id: uuid.UUID, connection_name: str) -> str:
    """The session and its entities ended failed; the reason names the connection."""
    session = MigrationStatus.objects.get(migration_session_id=session_id)
    assert session.overall_status == SessionStatus.FAILED
    states = dict(
        MigrationControl.objects.filter(session_id=session_id).values_list("entity_type", "state")
    )
    assert set(states.values()) <= {EntityState.FAILED, EntityState.BLOCKED}, states
    assert states["office"] == EntityState.FAILED
    assert not MigrationControl.objects.filter(session_id=session_id).exclude(lease_owner="")
    reason = session.error_summary["entities"]["office"]
    assert f"cannot open the connection {connection_name!r}" in reason, reason
    errors = MigrationExecutionLog.objects.filter(
        session_id=session_id, log_level=LogLevel.ERROR, entity_type="office"
    ).values_list("message", flat=True)
    assert any(reason in message for message in errors), list(errors)
    return reason


def assert_next_run_completes(monkeypatch, legacy_url: str, target_url: str) -> None:
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", legacy_url)
    monkeypatch.setenv("DIFFMIG_TARGET_URL", target_url)
    result = cli("run", "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["session"]["status"] == "completed"
    assert document["entities"]["office"]["processed"] == 2
    assert document["entities"]["doctor"]["processed"] == 2


CASES = [
    ("DIFFMIG_LEGACY_URL", "legacy", "down"),
    ("DIFFMIG_LEGACY_URL", "legacy", "password"),
    ("DIFFMIG_LEGACY_URL", "legacy", "database"),
    ("DIFFMIG_TARGET_URL", "target", "down"),
    ("DIFFMIG_TARGET_URL", "target", "password"),
    ("DIFFMIG_TARGET_URL", "target", "database"),
    ("DIFFMIG_LEGACY_URL", "legacy", "unset"),
]


def test_an_in_process_run_that_cannot_open_a_connection_fails_with_the_reason(
    offices, monkeypatch
):
    legacy_url, target_url = offices
    urls = {"DIFFMIG_LEGACY_URL": legacy_url, "DIFFMIG_TARGET_URL": target_url}
    for variable, name, how in CASES:
        if how == "unset":
            monkeypatch.delenv(variable)
        else:
            monkeypatch.setenv(variable, broken(urls[variable], how))

        result = cli("run", "--json")

        assert result.code == 1, (how, result.err)
        session = MigrationStatus.objects.latest("created_at")
        document = json.loads(result.out)
        assert document["session"]["status"] == "failed"
        reason = assert_failed_with_reason(session.migration_session_id, name)
        # The password never shows, the cause does.
        assert "wrong" not in reason
        monkeypatch.setenv(variable, urls[variable])
    assert_next_run_completes(monkeypatch, legacy_url, target_url)
    record(
        "faults",
        "a run whose source or destination cannot be opened (down, wrong password, unknown "
        "database, unset variable), in-process",
        tried=len(CASES),
        held=len(CASES),
        outcome="the session and its entities end failed with the reason; the next run is "
        "not blocked",
    )


def test_an_rq_run_that_cannot_open_a_connection_fails_with_the_reason(
    offices, monkeypatch, settings, tmp_path
):
    legacy_url, target_url = offices
    # On the workers a unit that cannot open a connection is tried again by the watchdog
    # (the database may be coming back), then its entity fails with the reason.
    settings.DIFFMIG_MAX_ATTEMPTS = 2
    settings.DIFFMIG_WATCHDOG_INTERVAL = 1
    cases = [("DIFFMIG_LEGACY_URL", "legacy", "down"), ("DIFFMIG_TARGET_URL", "target", "password")]
    urls = {"DIFFMIG_LEGACY_URL": legacy_url, "DIFFMIG_TARGET_URL": target_url}
    with jobs_on_redis(settings), workers(tmp_path) as start:
        for variable, name, how in cases:
            monkeypatch.setenv(variable, broken(urls[variable], how))
            started = start_run(options=RunOptions(), user="test", background=True)
            session_id = started.session.migration_session_id

            worker = start()  # it inherits the broken variable
            wait_until(
                lambda session_id=session_id: ended(session_id),
                timeout=60,
                what="the session ended",
            )
            assert worker.stop() == 0

            reason = assert_failed_with_reason(session_id, name)
            assert "its unit failed 2 times" in reason
            monkeypatch.setenv(variable, urls[variable])
        # Fixed: a new run on the workers completes (the failed sessions block nothing).
        session = start_run(options=RunOptions(), user="test", background=True).session
        assert start(burst=True).wait(timeout=90) == 0
    finished = MigrationStatus.objects.get(migration_session_id=session.migration_session_id)
    assert finished.overall_status == SessionStatus.COMPLETED
    assert finished.total_records_processed == 4
    record(
        "faults",
        "a run on RQ workers whose source or destination cannot be opened",
        tried=len(cases),
        held=len(cases),
        outcome="retried by the watchdog DIFFMIG_MAX_ATTEMPTS times, then the session and its "
        "entities end failed with the reason; the next run is not blocked",
    )


def ended(session_id: uuid.UUID) -> bool:
    status = MigrationStatus.objects.get(migration_session_id=session_id).overall_status
    return status not in (SessionStatus.PENDING, SessionStatus.RUNNING)
