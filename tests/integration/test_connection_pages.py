"""The connections pages: list, one connection, new and edit, and the Test button.

Against the real services: a test reaches a MariaDB and a PostgreSQL scratch database and
shows their server versions, or the exact error of one that does not answer. The password
is write-only: typed in the URL or in its field, it is stored encrypted and never appears
on any page, not even a refused form. Editors manage and test connections; operators and
auditors read, the last test result included.
"""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from migrationsapp.models import Connection
from migrationsapp.services.secrets import decrypt_secret
from tests.databases import (
    create_mysql_database,
    create_postgres_database,
    drop_mysql_database,
    drop_postgres_database,
    scratch_name,
)
from tests.factories import ConnectionFactory, SchemaMappingDefinitionFactory
from tests.support.reliability import record

pytestmark = [pytest.mark.django_db]

SECRET = "Hunter2-!pw"


def url(name: str, *args) -> str:
    return reverse(f"connections:{name}", args=args)


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def mariadb():
    database = create_mysql_database("pages")
    yield database
    drop_mysql_database(database)


@pytest.fixture
def postgres():
    database = create_postgres_database("pages")
    yield database
    drop_postgres_database(database)


def test_editor_adds_a_connection_and_its_password_is_never_shown(editor_client, mariadb):
    typed = mariadb.replace("root@", f"root:{SECRET.replace('!', '%21')}@")
    response = editor_client.post(
        url("new"), {"name": "legacy", "url": typed, "timezone": "Europe/Paris", "schema": ""}
    )

    assert response.status_code == 302
    assert response["Location"] == url("detail", "legacy")
    stored = Connection.objects.get(name="legacy")
    assert stored.url == mariadb
    assert decrypt_secret(stored.password_encrypted) == SECRET
    pages = [
        editor_client.get(url("list")),
        editor_client.get(url("detail", "legacy")),
        editor_client.get(url("edit", "legacy")),
    ]
    for page in pages:
        assert page.status_code == 200
        assert SECRET not in text(page) and "Hunter2" not in text(page)
    assert "stored (encrypted, never shown)" in text(pages[1])
    record(
        "secrets",
        "connection password on the connections pages",
        tried=3,
        held=3,
        outcome="stored encrypted, never shown",
    )


def test_a_refused_form_does_not_echo_the_typed_password(editor_client):
    response = editor_client.post(
        url("new"),
        {
            "name": "far",
            "url": f"postgresql://app:{SECRET}@db.example.com:5432/app",
            "timezone": "UTC",
            "schema": "",
        },
    )

    assert response.status_code == 400
    page = text(response)
    assert "Hunter2" not in page
    assert "db.example.com" in page and "DIFFMIG_ALLOWED_DB_HOSTS" in page
    assert not Connection.objects.filter(name="far").exists()


@pytest.mark.parametrize(
    "hostile",
    [
        "postgresql://app@10.0.0.9:5432/app",
        "mysql://root@127.0.0.1:3306/db?local_infile=1",
        "mysql://root@127.0.0.1:3306/db?read_default_file=/etc/passwd",
        "sqlite:////etc/passwd",
    ],
)
def test_urls_outside_the_policy_are_refused_and_nothing_is_stored(editor_client, hostile):
    response = editor_client.post(
        url("new"), {"name": "hostile", "url": hostile, "timezone": "UTC", "schema": ""}
    )

    assert response.status_code == 400
    assert re.search(r'class="error"', text(response))
    assert Connection.objects.count() == 0
    record(
        "hostile connection",
        "URL outside the policy typed on the connections page",
        tried=1,
        held=1,
        outcome="refused, nothing stored",
    )


def test_test_button_shows_the_server_version_and_keeps_it(editor_client, mariadb, postgres):
    ConnectionFactory(name="legacy", url=mariadb, password="")
    ConnectionFactory(name="target", url=postgres, password="")

    legacy = editor_client.post(url("test", "legacy"), HTTP_HX_REQUEST="true")
    target = editor_client.post(url("test", "target"))

    assert legacy.status_code == 200
    assert re.search(r"server-version\">MariaDB 10\.\d+", text(legacy)), text(legacy)
    assert target.status_code == 302
    stored = {c.name: c for c in Connection.objects.all()}
    assert stored["legacy"].last_test_ok is True
    assert stored["legacy"].last_test_result.startswith("MariaDB 10.")
    assert stored["target"].last_test_ok is True
    assert stored["target"].last_test_result.startswith("PostgreSQL 15")
    page = text(editor_client.get(url("detail", "target")))
    assert stored["target"].last_test_result in page and "Last tested" in page


def test_test_button_shows_the_exact_error_and_keeps_it(editor_client):
    missing = scratch_name("never_created")
    ConnectionFactory(name="gone", url=f"postgresql://postgres@127.0.0.1:5432/{missing}")

    response = editor_client.post(url("test", "gone"), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    stored = Connection.objects.get(name="gone")
    assert stored.last_test_ok is False
    assert f'database "{missing}" does not exist' in stored.last_test_result
    assert stored.last_test_result in html.unescape(text(response))
    assert "s3cret" not in stored.last_test_result
    record(
        "hostile connection",
        "connection test of a database that does not exist",
        tried=1,
        held=1,
        outcome="the exact error shown and kept, no password",
    )


def test_detail_lists_the_entities_that_use_the_connection(auditor_client):
    ConnectionFactory(name="legacy")
    SchemaMappingDefinitionFactory(entity_type="office", source_connection="legacy", active=True)
    SchemaMappingDefinitionFactory(
        entity_type="doctor", destination_connection="legacy", source_connection="x"
    )

    page = text(auditor_client.get(url("detail", "legacy")))

    uses = re.findall(r'<tr data-entity="(\w+)"><td>\w+</td><td>(\w+)</td>', page)
    assert uses == [("doctor", "destination"), ("office", "source")]
    listed = text(auditor_client.get(url("list")))
    assert re.search(r"office</a> <span class=\"muted\">\(source\)", listed)


def test_auditor_reads_but_may_not_test_add_or_edit(auditor_client):
    ConnectionFactory(name="legacy")
    detail = text(auditor_client.get(url("detail", "legacy")))

    assert "Test the connection" not in detail and url("edit", "legacy") not in detail
    assert auditor_client.post(url("test", "legacy")).status_code == 403
    assert auditor_client.get(url("new")).status_code == 403
    assert auditor_client.post(url("edit", "legacy"), {"url": "sqlite:///x.db"}).status_code == 403
    assert Connection.objects.get(name="legacy").last_tested_at is None


def test_operator_reads_the_last_test_but_may_not_test_or_edit(operator_client):
    ConnectionFactory(name="legacy")
    detail = text(operator_client.get(url("detail", "legacy")))

    assert "Never tested." in detail
    assert "Test the connection" not in detail and url("edit", "legacy") not in detail
    refused = operator_client.post(url("test", "legacy"))
    assert refused.status_code == 403
    assert "This needs the mapping editors role." in text(refused)
    assert operator_client.get(url("edit", "legacy")).status_code == 403


def test_moving_a_connection_clears_its_password_and_says_so(editor_client):
    ConnectionFactory(name="legacy", url="postgresql://app@127.0.0.1:5432/one", password="pw")

    response = editor_client.post(
        url("edit", "legacy"),
        {
            "name": "renamed",
            "url": "postgresql://app@127.0.0.1:5432/two",
            "timezone": "UTC",
            "schema": "",
        },
        follow=True,
    )

    stored = Connection.objects.get()
    assert (stored.name, stored.url, stored.has_password) == (
        "legacy",
        "postgresql://app@127.0.0.1:5432/two",
        False,
    )
    assert "The stored password was cleared" in text(response)


def test_editing_with_an_empty_password_keeps_the_stored_one(editor_client):
    ConnectionFactory(name="legacy", url="postgresql://app@127.0.0.1:5432/one", password="pw")

    response = editor_client.post(
        url("edit", "legacy"),
        {
            "url": "postgresql://app@127.0.0.1:5432/one",
            "timezone": "UTC",
            "schema": "crm",
            "password": "",
        },
    )

    assert response.status_code == 302
    stored = Connection.objects.get()
    assert (stored.schema, decrypt_secret(stored.password_encrypted)) == ("crm", "pw")
