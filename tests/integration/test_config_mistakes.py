"""Configuration mistakes explain themselves: a bad DATABASE_URL, a control database that has no
tables yet or cannot be reached, a SQLite connection whose file is missing.

Each is an ``error:`` line and a ``hint:`` line with the contract's exit code, from the CLI, from
``check`` and from ``runserver`` alike, never a traceback; the commands run in subprocesses with
a clean environment, as a user would start them. The DEBUG warning shows once when the server
starts, not above the output of migrate or the CLI.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from tests.databases import create_postgres_database, drop_postgres_database
from tests.integration.conftest import cli
from tests.support.people import create_people
from tests.support.redis_server import free_port
from tests.support.reliability import record

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-Pw-h10"
CONSOLE = "from migrationsapp.cli.console import main; main()"


def clean_env(tmp_path: Path, **env: str) -> dict[str, str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DIFFMIG_"))
        and k not in {"DATABASE_URL", "DEBUG", "SECRET_KEY", "REDIS_URL"}
    }
    environ["DIFFMIG_SQLITE_ROOT"] = str(tmp_path / "databases")
    environ["PYTHONUNBUFFERED"] = "1"
    environ.update(env)
    return environ


def manage(tmp_path: Path, *args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path, **env),
        cwd=cwd,
        timeout=120,
    )


def console(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The console script's function, started from a folder outside the project."""
    return subprocess.run(
        [sys.executable, "-c", CONSOLE, *args],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path, **env),
        cwd=tmp_path,
        timeout=120,
    )


def two_lines(result: subprocess.CompletedProcess) -> tuple[str, str]:
    """The error and the hint, and nothing else on stderr."""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0], lines[1]


# (DATABASE_URL, what the error says, what the hint says)
BAD_URLS = [
    (
        f"mysql://app:{PASSWORD}@127.0.0.1:3306/control",
        "error: DATABASE_URL scheme 'mysql' is not supported for the control database "
        "(PostgreSQL or SQLite only)",
        "postgresql://user@host:5432/dbname",
    ),
    (
        "sqlite://{name}/control.sqlite3",
        "error: DATABASE_URL='sqlite://{name}/control.sqlite3' has two slashes after sqlite:, "
        "so '{name}' would be read as a host",
        "hint: write sqlite:///{name}/control.sqlite3 (three slashes: relative to the project "
        "folder) or sqlite:////{name}/control.sqlite3 (four: absolute)",
    ),
    (
        "/srv/{name}/control.sqlite3",
        "error: DATABASE_URL='/srv/{name}/control.sqlite3' is not a URL",
        "hint: for a SQLite file write sqlite:////srv/{name}/control.sqlite3",
    ),
    (
        "{name}.sqlite3",
        "error: DATABASE_URL='{name}.sqlite3' is not a URL",
        "hint: for a SQLite file write sqlite:///{name}.sqlite3",
    ),
    (
        f"postgresql://app:{PASSWORD}@127.0.0.1:54x2/control",
        "error: DATABASE_URL='postgresql://app:***@127.0.0.1:54x2/control': the port is not a "
        "number from 1 to 65535",
        "hint: write postgresql://user@host:5432/dbname",
    ),
]


@pytest.mark.embedded
def test_a_bad_database_url_is_one_line_and_a_hint_from_the_cli_check_and_runserver(tmp_path):
    tried = 0
    for url, error, hint in BAD_URLS:
        name = f"h10-{uuid.uuid4().hex[:8]}"
        url, error, hint = (text.replace("{name}", name) for text in (url, error, hint))
        runs = {
            "diffmig status": manage(tmp_path, "diffmig", "status", DATABASE_URL=url),
            "check": manage(tmp_path, "check", DATABASE_URL=url),
            "runserver": manage(
                tmp_path, "runserver", f"127.0.0.1:{free_port()}", DATABASE_URL=url
            ),
            "console script": console(tmp_path, "status", DATABASE_URL=url),
        }
        for command, result in runs.items():
            first, second = two_lines(result)
            assert result.returncode == 2, (command, url, result.stderr)
            assert first.startswith(error), (command, first)
            assert hint in second, (command, second)
            assert PASSWORD not in result.stdout + result.stderr
            tried += 1
        # Nothing was created where a misread URL would have put it.
        assert not [p for p in ROOT.iterdir() if p.name.startswith(name)]
        assert not (ROOT / "control.sqlite3").exists()
    record(
        "command line",
        "a bad DATABASE_URL (another scheme, sqlite:// with two slashes, a bare path, a bad port)",
        tried=tried,
        held=tried,
        outcome="exit 2 from the CLI, check and runserver: an error line and a hint that gives the "
        "URL to write; no traceback, no password, no file created",
    )


@pytest.mark.embedded
def test_no_such_table_says_to_migrate_and_the_hint_runs_as_printed(tmp_path):
    database = tmp_path / "fresh.sqlite3"
    url = f"sqlite:///{database}"
    result = manage(tmp_path, "diffmig", "status", DATABASE_URL=url)
    first, second = two_lines(result)
    assert result.returncode == 4
    assert first == (
        f"error: the control database (the SQLite file {database}) has no table "
        "migration_status_tracking: diffmig's tables are not created there, or not up to date"
    )
    # Printed from the project folder, the hint runs as it reads; migrate warns of nothing.
    command = second.removeprefix("hint: create them with ").split(" (")[0]
    assert command.endswith("manage.py migrate"), second
    migrated = subprocess.run(
        [*shlex.split(command), "--noinput"],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path, DATABASE_URL=url),
        cwd=ROOT,
        timeout=300,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "W001" not in migrated.stdout + migrated.stderr
    after = manage(tmp_path, "diffmig", "status", DATABASE_URL=url)
    assert after.returncode == 4
    assert after.stderr.splitlines()[0] == "error: there is no session yet"
    assert "W001" not in after.stdout + after.stderr
    record(
        "command line",
        "a control database with no tables (never migrated)",
        tried=1,
        held=1,
        outcome="exit 4: names the database and the missing table; the hint's migrate command "
        "runs as printed",
    )


@pytest.mark.services
def test_no_such_relation_on_postgresql_says_to_migrate_too(tmp_path):
    url = create_postgres_database("h10_empty")
    try:
        result = manage(tmp_path, "diffmig", "status", DATABASE_URL=url)
    finally:
        drop_postgres_database(url)
    first, second = two_lines(result)
    assert result.returncode == 4
    name = url.rsplit("/", 1)[1]
    assert first == (
        f"error: the control database (PostgreSQL database '{name}' on 127.0.0.1:5432) has no "
        "table migration_status_tracking: diffmig's tables are not created there, or not up to date"
    )
    assert second.endswith("manage.py migrate (make demo and make serve do it first)")


@pytest.mark.services
def test_an_unreachable_control_database_is_two_lines_from_the_cli_and_runserver(tmp_path):
    port = free_port()  # nothing listens there
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{port}/control"
    runs = [
        manage(tmp_path, "diffmig", "status", DATABASE_URL=url),
        manage(tmp_path, "runserver", f"127.0.0.1:{free_port()}", DATABASE_URL=url),
    ]
    for result in runs:
        first, second = two_lines(result)
        assert result.returncode == 4
        assert first.startswith(
            f"error: the control database (PostgreSQL database 'control' on 127.0.0.1:{port}) "
            "cannot be reached: connection failed:"
        ), first
        assert second.startswith("hint: check DATABASE_URL: PostgreSQL must run there")
        assert PASSWORD not in result.stdout + result.stderr
    record(
        "faults",
        "control database unreachable when a command or the server starts",
        tried=len(runs),
        held=len(runs),
        outcome="exit 4: an error line naming the database (never its password) and a hint",
    )


def read_until(process: subprocess.Popen, marker: str, lines: list[str]) -> None:
    for line in process.stdout:
        lines.append(line)
        if marker in line:
            return


@pytest.mark.embedded
def test_the_debug_warning_shows_once_when_the_server_starts(tmp_path):
    env = clean_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'control.sqlite3'}")
    server = subprocess.Popen(  # with the autoreloader, as `make serve` starts it
        [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{free_port()}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=read_until, args=(server, "Quit the server with", lines))
    reader.start()
    reader.join(timeout=60)
    os.killpg(server.pid, signal.SIGTERM)  # the server's own process group: it and its child
    server.wait(timeout=30)
    reader.join(timeout=10)
    output = "".join(lines)
    assert "Starting development server" in output, output
    assert output.count("diffmig.W001") == 1, output
    assert "Traceback" not in output


@pytest.mark.embedded
@pytest.mark.django_db
def test_connections_test_on_a_missing_sqlite_file_fails_and_creates_nothing(tmp_path, settings):
    settings.DIFFMIG_SQLITE_ROOT = tmp_path
    people = create_people(tmp_path)
    people.import_mapping()
    people.dispose()
    legacy = tmp_path / "legacy.db"
    legacy.unlink()
    result = cli("connections", "test")
    assert result.code == 4
    lines = result.out.splitlines()
    assert lines[0] == (
        f"legacy: FAILED  connection 'legacy': the SQLite file {legacy} does not exist "
        f"(check the URL's path; a test never creates the file)  (sqlite:///{legacy})"
    )
    assert lines[1].startswith("target: ok  SQLite ")
    assert not legacy.exists()
    record(
        "hostile connection",
        "connections test on a SQLite file that does not exist",
        tried=1,
        held=1,
        outcome="exit 4 naming the file; the file is not created",
    )
