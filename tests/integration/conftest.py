"""Fixtures for tests on the real services: scratch source and destination databases, the CLI."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from django.core.management import CommandError, call_command

from tests.databases import (
    create_mysql_database,
    create_postgres_database,
    drop_mysql_database,
    drop_postgres_database,
)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def cli(*args: str) -> CliResult:
    """Run `manage.py diffmig ARGS` in this process; exit codes come back, not raised."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command("diffmig", *args, stdout=out, stderr=err)
    except SystemExit as stop:
        code = int(stop.code or 0)
    except CommandError as refused:
        # An argument the parser refused: a terminal gets one line and exit 2 (the command's
        # OneLineParser); called from code, Django raises CommandError instead.
        code = 2
        err.write(f"error: {str(refused).removeprefix('Error: ')}\n")
    return CliResult(code=code, out=out.getvalue(), err=err.getvalue())


@pytest.fixture
def legacy_mysql() -> str:
    url = create_mysql_database("legacy")
    yield url
    drop_mysql_database(url)


@pytest.fixture
def target_pg() -> str:
    url = create_postgres_database("target")
    yield url
    drop_postgres_database(url)


@pytest.fixture
def mysql_to_pg(monkeypatch, legacy_mysql, target_pg) -> tuple[str, str]:
    """A MariaDB legacy database and a PostgreSQL destination, named by the mapping's variables."""
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", legacy_mysql)
    monkeypatch.setenv("DIFFMIG_TARGET_URL", target_pg)
    return legacy_mysql, target_pg
