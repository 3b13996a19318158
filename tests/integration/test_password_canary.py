"""A canary password, set every way a password can reach diffmig, appears in no output.

The legacy database is MariaDB with a user of its own whose password is the canary, so a run
that reads it proves the password arrived intact (MariaDB checks it; the PostgreSQL of the
tests trusts everyone). The canary is given percent-encoded in a mapping file's URL, as a
whole-URL placeholder, as a password-only placeholder, through the admin's form (typed, and
inside the URL), as a query option and with an unencoded '@' and '/' (both refused), and
re-imported over an old password. Then every output is searched: the CLI (connections test,
mappings export, run, status, logs, refusals with --traceback), the web (export and import
pages, admin connection pages as auditor and editor, log pages), the execution log's rows,
LogEntry, and every log record Python's logging saw.
"""

from __future__ import annotations

import json
import logging
import secrets
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote as admin_quote
from django.urls import reverse

from migrationsapp.models import Connection, MigrationExecutionLog
from tests.databases import engine_for, mysql_admin_url
from tests.integration.conftest import cli
from tests.support.reliability import record

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

CANARY = "Cn4ry-P@ss/w0rd"
# Every form the canary could leak in: whole, encoded (both ways), and either half alone.
LEAKS = (CANARY, quote(CANARY, safe=""), quote(CANARY), "Cn4ry", "w0rd")

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
      - {{source: name, destination: name, transform: trim}}
"""


def assert_no_canary(where: str, text: str) -> None:
    found = [leak for leak in LEAKS if leak in text]
    assert found == [], f"{where} shows the password ({found})"


@pytest.fixture
def canary_user(legacy_mysql):
    """A MariaDB user (password: the canary) owning the legacy database, with a table."""
    database = sa.engine.make_url(legacy_mysql).database
    user = f"diffmig_t_{secrets.token_hex(4)}"
    admin = engine_for(mysql_admin_url())
    hosts = ("%", "localhost", "127.0.0.1")
    with admin.begin() as conn:
        for host in hosts:
            account = f"'{user}'@'{host}'".replace("%", "%%")  # the driver formats with %
            conn.exec_driver_sql(f"CREATE USER {account} IDENTIFIED BY %s", (CANARY,))
            conn.exec_driver_sql(f"GRANT ALL ON `{database}`.* TO {account}", ())
    legacy = engine_for(legacy_mysql)
    with legacy.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(50))")
        conn.exec_driver_sql("INSERT INTO people VALUES (1, ' Ann '), (2, 'Bob')")
    legacy.dispose()
    host_port = sa.engine.make_url(legacy_mysql)
    yield user, f"{host_port.host}:{host_port.port or 3306}/{database}"
    with admin.begin() as conn:
        for host in hosts:
            account = f"'{user}'@'{host}'".replace("%", "%%")
            conn.exec_driver_sql(f"DROP USER IF EXISTS {account}", ())
    admin.dispose()


@pytest.fixture
def target(target_pg):
    engine = engine_for(target_pg)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE person (id UUID PRIMARY KEY, legacy_id INT NOT NULL, name TEXT NOT NULL)"
        )
    yield target_pg, engine
    engine.dispose()


def import_file(tmp_path, legacy: str, target: str, *before: str):
    path = tmp_path / f"mapping-{secrets.token_hex(3)}.yaml"
    path.write_text(MAPPING.format(legacy=legacy, target=target))
    return cli(*before, "mappings", "import", str(path))


def test_the_canary_password_appears_in_no_output(
    canary_user, target, tmp_path, monkeypatch, caplog, editor_client, auditor_client
):
    caplog.set_level(logging.DEBUG)
    user, where = canary_user
    target_url, target_engine = target
    encoded = f"mysql://{user}:{quote(CANARY, safe='')}@{where}"
    outputs: dict[str, str] = {}
    tried = 0

    def out(name: str, result) -> None:
        outputs[name] = result.out + result.err

    # 1. Percent-encoded in the file's URL: stored encrypted, and the run really logs in.
    imported = import_file(tmp_path, encoded, target_url)
    assert imported.code == 0, imported.err
    out("import literal", imported)
    assert Connection.objects.get(name="legacy").has_password
    run = cli("run", "--json")
    assert run.code == 0, run.out + run.err
    out("run literal", run)
    first_session = json.loads(run.out)["session"]["id"]
    assert json.loads(run.out)["entities"]["person"]["processed"] == 2
    tried += 1

    # 2. Re-imported as a whole-URL placeholder over the old password: the old one is cleared,
    # the variable's URL (with the canary) is used.
    monkeypatch.setenv("DIFFMIG_H1_LEGACY_URL", encoded)
    imported = import_file(tmp_path, "${DIFFMIG_H1_LEGACY_URL}", target_url)
    assert imported.code == 0, imported.err
    out("import placeholder url", imported)
    assert not Connection.objects.get(name="legacy").has_password
    for name in ("connections", "export"):
        args = ("connections", "test") if name == "connections" else ("mappings", "export")
        result = cli(*args)
        assert result.code == 0, result.out + result.err
        out(f"{name} placeholder url", result)
    assert "legacy: ok" in outputs["connections placeholder url"]
    tried += 1

    # 3. The password alone as a placeholder: the variable holds it raw, '@' and '/' and all.
    monkeypatch.setenv("DIFFMIG_H1_PW", CANARY)
    imported = import_file(tmp_path, f"mysql://{user}:${{DIFFMIG_H1_PW}}@{where}", target_url)
    assert imported.code == 0, imported.err
    stored = Connection.objects.get(name="legacy")
    assert stored.url == f"mysql://{user}:${{DIFFMIG_H1_PW}}@{where}"
    assert not stored.has_password
    run = cli("run", "--baseline")
    assert run.code == 0, run.out + run.err
    out("run placeholder password", run)
    tried += 1

    # 4. A wrong password from the variable: the failure names the connection, not a password.
    monkeypatch.setenv("DIFFMIG_H1_PW", CANARY + "x")
    for args in (("connections", "test"), ("--traceback", "run"), ("status",)):
        result = cli(*args)
        out(" ".join(args) + " wrong password", result)
    assert "Access denied" in outputs["--traceback run wrong password"]
    assert "legacy: FAILED" in outputs["connections test wrong password"]
    assert "Access denied" in outputs["connections test wrong password"]
    monkeypatch.setenv("DIFFMIG_H1_PW", CANARY)
    tried += 1

    # 5. Refused ways: a query option, an unencoded '@' and '/', a password beside a
    # placeholder. Nothing is stored; the refusals (even with --traceback) show no password.
    before = cli("mappings", "export").out
    refused_urls = {
        "query option": f"mysql://{user}@{where}?password={quote(CANARY, safe='')}",
        "query passwd": f"mysql://{user}@{where}?passwd={CANARY}",
        "unencoded": f"mysql://{user}:{CANARY}@{where}",
        "mixed placeholder": f"mysql://{user}:{quote(CANARY, safe='')}${{DIFFMIG_H1_PW}}@{where}",
    }
    for name, url in refused_urls.items():
        result = import_file(tmp_path, url, target_url, "--traceback")
        assert "unrecognized" not in result.err
        assert result.code == 2, (name, result.out)
        out(f"import {name}", result)
        tried += 1
    assert cli("mappings", "export").out == before
    assert "percent-encode" in outputs["import unencoded"]
    assert "driver option 'password' is refused" in outputs["import query option"]
    assert "mixes a ${…} placeholder" in outputs["import mixed placeholder"]
    for name in ("query option", "unencoded"):
        text = MAPPING.format(legacy=refused_urls[name], target=target_url)
        page = editor_client.post(reverse("mappings:import"), {"text": text})
        assert "mapping refused" in page.content.decode() or "is refused" in page.content.decode()
        assert page.status_code == 400, page.status_code
        outputs[f"web import {name}"] = page.content.decode()

    # 6. The admin: typed into the password field, and inside the URL; a refused URL.
    target_engine.dispose()
    add = reverse("admin:migrationsapp_connection_add")
    response = editor_client.post(
        add,
        {"name": "typed", "url": f"mysql://{user}@{where}", "timezone": "UTC", "password": CANARY},
    )
    assert response.status_code == 302
    response = editor_client.post(
        add, {"name": "inurl", "url": encoded, "timezone": "UTC", "password": ""}
    )
    assert response.status_code == 302
    refused = editor_client.post(
        add, {"name": "bad", "url": f"mysql://{user}:{CANARY}@{where}", "timezone": "UTC"}
    )
    assert refused.status_code == 200
    outputs["admin refused form"] = refused.content.decode()
    refused = editor_client.post(
        add, {"name": "bad", "url": refused_urls["query passwd"], "timezone": "UTC"}
    )
    assert refused.status_code == 200
    outputs["admin refused query form"] = refused.content.decode()
    assert not Connection.objects.filter(name="bad").exists()
    assert Connection.objects.get(name="typed").has_password
    assert Connection.objects.get(name="inurl").url == f"mysql://{user}@{where}"
    tried += 3

    # Every other output.
    for args in (
        ("mappings", "export"),
        ("connections", "test"),
        ("status",),
        ("status", first_session, "--json"),
        ("logs", first_session, "--level", "debug"),
    ):
        out(" ".join(args), cli(*args))
    pages = {
        "export page": reverse("mappings:export"),
        "log page": reverse("audit:logs"),
        "session log": reverse("runs:session_log", args=[first_session]),
        "session": reverse("runs:session", args=[first_session]),
        "admin list": reverse("admin:migrationsapp_connection_changelist"),
    }
    for connection in Connection.objects.all():
        pages[f"admin {connection.name}"] = reverse(
            "admin:migrationsapp_connection_change", args=[admin_quote(connection.pk)]
        )
        pages[f"admin history {connection.name}"] = reverse(
            "admin:migrationsapp_connection_history", args=[admin_quote(connection.pk)]
        )
    for role, client in (("editor", editor_client), ("auditor", auditor_client)):
        for name, url in pages.items():
            response = client.get(url)
            assert response.status_code == 200, (role, name, response.status_code)
            outputs[f"{role} {name}"] = response.content.decode()
    for entry in MigrationExecutionLog.objects.all():
        outputs[f"log row {entry.pk}"] = json.dumps(
            [entry.message, entry.error_details, entry.context_data, entry.performance_data],
            default=str,
        )
    for entry in LogEntry.objects.all():
        outputs[f"LogEntry {entry.pk}"] = f"{entry.object_repr} {entry.change_message}"
    outputs["python logging"] = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    assert MigrationExecutionLog.objects.exists() and LogEntry.objects.count() >= 2
    for where_shown, text in outputs.items():
        assert_no_canary(where_shown, text)
    # The stored rows hold it encrypted only.
    for connection in Connection.objects.all():
        assert_no_canary(
            f"stored {connection.name}", f"{connection.url} {connection.password_encrypted}"
        )

    record(
        "secrets",
        "canary password set every way (URL, placeholders, admin, query option, unencoded '@')",
        tried=tried,
        held=tried,
        outcome=f"absent from {len(outputs)} outputs: CLI, pages, log rows, LogEntry, logging",
    )
