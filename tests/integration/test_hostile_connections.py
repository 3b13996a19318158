"""Hostile connections: the control database, moved targets, a SQLite root holding the control file.

A mapping editor must not reach the control database (its sessions, users and secrets)
through a connection: refused at import, and at preview and run when a ``${DIFFMIG_…}``
variable is later pointed at it. A stored password never follows a connection to a new host
or database.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.admin.utils import quote as admin_quote
from django.urls import reverse

from migrationsapp.models import Connection, MigrationStatus
from migrationsapp.services.connections import save_connection, spec_of
from migrationsapp.services.secrets import decrypt_secret
from tests.databases import engine_for
from tests.integration.conftest import cli
from tests.support.reliability import record
from tests.support.workers import control_database_url

ROOT = Path(__file__).resolve().parents[2]

MAPPING = """\
version: 1
connections:
  legacy: {{url: "{legacy}"}}
  target: {{url: "{target}"}}
source: legacy
destination: target
entities:
  - name: person
    source_table: people
    source_key: [id]
    destination_table: person
    destination_key: id
    fields:
      - {{source: id, destination: legacy_id}}
"""


def write_mapping(tmp_path: Path, legacy: str, target: str) -> str:
    path = tmp_path / f"mapping-{secrets.token_hex(3)}.yaml"
    path.write_text(MAPPING.format(legacy=legacy, target=target))
    return str(path)


@pytest.fixture
def pg_pair(target_pg, monkeypatch):
    """One scratch PostgreSQL database holding both the legacy table and the destination."""
    engine = engine_for(target_pg)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE people (id INT PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO people VALUES (1), (2)")
        conn.exec_driver_sql("CREATE TABLE person (id UUID PRIMARY KEY, legacy_id INT NOT NULL)")
    engine.dispose()
    monkeypatch.setenv("DIFFMIG_H1_LEGACY_URL", target_pg)
    return target_pg


def control_urls() -> list[str]:
    url = control_database_url()
    return [url, url.replace("@127.0.0.1:", "@localhost:"), url.replace(":5432/", "/")]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_import_naming_the_control_database_is_refused_and_stores_nothing(pg_pair, tmp_path):
    before = cli("mappings", "export").out
    tried = 0
    for url in control_urls():
        result = cli("mappings", "import", write_mapping(tmp_path, url, pg_pair))
        assert result.code == 2, result.out
        assert "it is diffmig's control database" in result.err
        assert "connection 'legacy'" in result.err
        tried += 1
    assert not Connection.objects.exists()
    assert cli("mappings", "export").out == before
    record(
        "hostile connection",
        "mapping import naming the PostgreSQL control database (127.0.0.1, localhost, no port)",
        tried=tried,
        held=tried,
        outcome="import refused with exit 2, saying why; nothing stored",
    )


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_variable_pointed_at_the_control_database_later_is_refused_at_preview_and_run(
    pg_pair, tmp_path, monkeypatch
):
    imported = cli(
        "mappings", "import", write_mapping(tmp_path, "${DIFFMIG_H1_LEGACY_URL}", pg_pair)
    )
    assert imported.code == 0, imported.err
    monkeypatch.setenv("DIFFMIG_H1_LEGACY_URL", control_database_url())

    preview = cli("mappings", "preview", "person")
    assert preview.code == 2, preview.out
    assert "it is diffmig's control database" in preview.err
    run = cli("run")
    assert run.code in (1, 2), run.out
    assert "it is diffmig's control database" in run.out + run.err
    tested = cli("connections", "test")
    assert tested.code == 4
    assert "legacy: FAILED" in tested.out and "control database" in tested.out
    # Nothing was written to the destination.
    engine = engine_for(pg_pair)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM person").scalar() == 0
    engine.dispose()
    assert MigrationStatus.objects.count() <= 1
    record(
        "hostile connection",
        "a ${DIFFMIG_…} URL pointed at the control database after import",
        tried=3,
        held=3,
        outcome="preview, run and connections test refuse it, saying it is the control database",
    )


@pytest.mark.django_db
@pytest.mark.embedded
def test_a_stored_password_never_follows_a_connection_to_a_new_target():
    url = "postgresql://app@127.0.0.1:5432/legacy"
    changes = {
        "host": "postgresql://app@localhost:5432/legacy",
        "port": "postgresql://app@127.0.0.1:5433/legacy",
        "database": "postgresql://app@127.0.0.1:5432/other",
        "kind": "mysql://app@127.0.0.1:5432/legacy",
        "whole placeholder": "${DIFFMIG_H1_LEGACY_URL}",
        "placeholder host": "postgresql://app@${DIFFMIG_H1_HOST}:5432/legacy",
    }
    for change, new_url in changes.items():
        save_connection(name="legacy", url=url, password="s3cret")
        assert spec_of(Connection.objects.get(name="legacy")).password == "s3cret"
        moved = save_connection(name="legacy", url=new_url)
        assert moved.password_encrypted == "", change
    # Same target (the user or a driver option changed): the password stays.
    save_connection(name="legacy", url=url, password="s3cret")
    kept = save_connection(
        name="legacy", url="postgresql://other@127.0.0.1:5432/legacy?sslmode=require"
    )
    assert decrypt_secret(kept.password_encrypted) == "s3cret"
    record(
        "secrets",
        "connection moved to another host, port, database or kind with a password stored",
        tried=len(changes),
        held=len(changes),
        outcome="the stored password is cleared, never sent to the new target",
    )


@pytest.mark.django_db
@pytest.mark.embedded
def test_the_admin_clears_the_password_of_a_moved_connection_and_says_so(editor_client):
    connection = save_connection(
        name="legacy", url="mysql://app@127.0.0.1:3306/clinic", password="s3cret"
    )
    change = reverse("admin:migrationsapp_connection_change", args=[admin_quote(connection.pk)])
    response = editor_client.post(
        change,
        {"url": "mysql://app@localhost:3306/clinic", "timezone": "UTC", "schema": ""},
        follow=True,
    )
    assert response.status_code == 200
    assert "The stored password was cleared" in response.content.decode()
    assert Connection.objects.get(name="legacy").password_encrypted == ""


@pytest.mark.django_db
@pytest.mark.embedded
def test_the_admin_refuses_a_url_the_policy_refuses(editor_client, settings):
    add = reverse("admin:migrationsapp_connection_add")
    refused = {
        "mysql://app@db.example.com:3306/clinic": "DIFFMIG_ALLOWED_DB_HOSTS",
        "mysql://app@127.0.0.1/clinic?unix_socket=/run/mysqld/mysqld.sock": "local socket",
        "postgresql://app@127.0.0.1/clinic?sslrootcert=/etc/shadow": "sslrootcert",
        "sqlite:////etc/passwd": "outside DIFFMIG_SQLITE_ROOT",
    }
    for url, reason in refused.items():
        response = editor_client.post(add, {"name": "x", "url": url, "timezone": "UTC"})
        assert response.status_code == 200, url
        assert reason in response.content.decode(), url
    assert not Connection.objects.exists()


@pytest.mark.django_db
@pytest.mark.embedded
def test_the_control_sqlite_file_is_refused_even_through_a_hard_link(tmp_path, settings):
    root = tmp_path / "databases"
    root.mkdir()
    control = tmp_path / "control.sqlite3"
    engine = engine_for(f"sqlite:///{control}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE people (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE person (id UUID PRIMARY KEY, legacy_id INT NOT NULL)")
    engine.dispose()
    os.link(control, root / "innocent.sqlite3")
    settings.DIFFMIG_SQLITE_ROOT = root
    settings.DIFFMIG_CONTROL_DATABASE = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(control),
    }
    linked = f"sqlite:///{root}/innocent.sqlite3"
    result = cli("mappings", "import", write_mapping(tmp_path, linked, linked))
    assert result.code == 2, result.out
    assert "it is the control database's own file" in result.err
    assert not Connection.objects.exists()

    settings.DIFFMIG_SQLITE_ROOT = tmp_path  # a root holding the control file
    (tmp_path / "legacy.sqlite3").write_bytes(b"")
    other = f"sqlite:///{tmp_path}/legacy.sqlite3"
    result = cli("mappings", "import", write_mapping(tmp_path, other, other))
    assert result.code == 2
    assert "holds the control database's file" in result.err
    record(
        "hostile connection",
        "SQLite URL reaching the control file (hard link; root holding it)",
        tried=2,
        held=2,
        outcome="import refused, saying it is the control database's file",
    )


@pytest.mark.embedded
def test_the_server_refuses_to_start_with_a_sqlite_root_holding_the_control_file(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DIFFMIG_"))}
    environ.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path}/control.sqlite3",
            "DIFFMIG_SQLITE_ROOT": str(tmp_path),
        }
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        capture_output=True,
        text=True,
        env=environ,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode != 0
    assert "DIFFMIG_SQLITE_ROOT" in result.stderr
    assert "holds the control database's file" in result.stderr
