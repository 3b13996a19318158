"""Connection passwords: write-only in the admin, encrypted at rest, rotatable.

The plain password (and its ciphertext) must appear on no admin page of a connection, in no
LogEntry and in no serialized export of the admin's records.
"""

from __future__ import annotations

import io
from urllib.parse import quote as urlquote

import pytest
from cryptography.fernet import Fernet
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.core import serializers
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse

from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.models import Connection
from migrationsapp.services.connections import spec_of
from migrationsapp.services.secrets import decrypt_secret
from tests.factories import ConnectionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

PASSWORD = "Tr0ub4dor&3-not-in-html"
QUOTED_PASSWORD = urlquote(PASSWORD, safe="")


def url_of(view: str, connection: Connection | None = None) -> str:
    args = [quote(connection.pk)] if connection is not None else []
    return reverse(f"admin:migrationsapp_connection_{view}", args=args)


def add_form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "legacy",
        "url": "mysql://diffmig@127.0.0.1:3306/clinic",
        "timezone": "Europe/Paris",
        "schema": "",
        "password": PASSWORD,
    }
    data.update(overrides)
    return data


def change_form(connection: Connection, **overrides: str) -> dict[str, str]:
    data = {
        "url": connection.url,
        "timezone": connection.timezone,
        "schema": connection.schema,
        "password": "",
    }
    data.update(overrides)
    return data


def assert_secret_absent(text: str, connection: Connection) -> None:
    assert PASSWORD not in text
    assert connection.password_encrypted not in text


def admin_pages(client, connection: Connection) -> dict[str, str]:
    pages = {
        "changelist": client.get(url_of("changelist")),
        "change": client.get(url_of("change", connection)),
        "history": client.get(url_of("history", connection)),
        "add": client.get(url_of("add")),
        "delete": client.get(url_of("delete", connection)),
        "search": client.get(url_of("changelist"), {"q": connection.name}),
    }
    assert {name: page.status_code for name, page in pages.items()} == dict.fromkeys(pages, 200)
    return {name: page.content.decode() for name, page in pages.items()}


def test_factory_stores_the_password_encrypted():
    connection = ConnectionFactory(password=PASSWORD)
    assert connection.password_encrypted not in {"", PASSWORD}
    assert PASSWORD not in connection.password_encrypted
    assert decrypt_secret(connection.password_encrypted) == PASSWORD
    spec = spec_of(connection)
    assert (spec.url, spec.password) == (connection.url, PASSWORD)
    assert PASSWORD not in repr(spec)


def test_editor_adds_a_connection_whose_password_is_stored_encrypted(editor_client):
    response = editor_client.post(url_of("add"), add_form())

    assert response.status_code == 302
    connection = Connection.objects.get(name="legacy")
    assert connection.url == "mysql://diffmig@127.0.0.1:3306/clinic"
    assert connection.timezone == "Europe/Paris"
    assert connection.password_encrypted != PASSWORD
    assert decrypt_secret(connection.password_encrypted) == PASSWORD


def test_password_appears_on_no_admin_page_log_entry_or_export(editor_client, auditor_client):
    editor_client.post(url_of("add"), add_form())
    connection = Connection.objects.get(name="legacy")
    editor_client.post(
        url_of("change", connection), change_form(connection, password=PASSWORD + "2")
    )
    connection.refresh_from_db()
    assert decrypt_secret(connection.password_encrypted) == PASSWORD + "2"

    for page in admin_pages(editor_client, connection).values():
        assert_secret_absent(page, connection)
        assert (PASSWORD + "2") not in page
    auditor_pages = {
        "changelist": auditor_client.get(url_of("changelist")).content.decode(),
        "change": auditor_client.get(url_of("change", connection)).content.decode(),
        "history": auditor_client.get(url_of("history", connection)).content.decode(),
    }
    for page in auditor_pages.values():
        assert_secret_absent(page, connection)
    entries = list(LogEntry.objects.order_by("pk"))
    assert len(entries) == 2
    for entry in entries:
        assert_secret_absent(f"{entry.object_repr} {entry.change_message} {entry}", connection)
    exported = serializers.serialize("json", [*entries, connection], fields=["url", "name"])
    assert_secret_absent(exported, connection)
    assert_secret_absent(serializers.serialize("json", entries), connection)
    dumped = io.StringIO()
    call_command("dumpdata", "admin", stdout=dumped)
    assert '"model": "admin.logentry"' in dumped.getvalue()
    assert_secret_absent(dumped.getvalue(), connection)


def test_changelist_shows_password_set_yes_or_no(auditor_client):
    ConnectionFactory(name="legacy", password=PASSWORD)
    ConnectionFactory(name="target", password="")

    response = auditor_client.get(url_of("changelist"))

    rows = {
        result.name: (result.host, result.database, result.timezone)
        for result in response.context["cl"].result_list
    }
    assert rows == {
        "legacy": ("127.0.0.1", "legacy", "UTC"),
        "target": ("127.0.0.1", "target", "UTC"),
    }
    admin = response.context["cl"].model_admin
    assert {c.name: admin.password_set(c) for c in response.context["cl"].result_list} == {
        "legacy": "yes",
        "target": "no",
    }
    html = response.content.decode()
    assert "password set" in html.lower()
    assert "password_encrypted" not in html


def test_empty_password_keeps_the_stored_one(editor_client):
    connection = ConnectionFactory(password=PASSWORD)
    stored = connection.password_encrypted

    response = editor_client.post(
        url_of("change", connection), change_form(connection, timezone="America/New_York")
    )

    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.timezone == "America/New_York"
    assert connection.password_encrypted == stored


def test_clear_password_removes_the_stored_one(editor_client):
    connection = ConnectionFactory(password=PASSWORD)

    response = editor_client.post(
        url_of("change", connection), change_form(connection, clear_password="on")
    )

    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.password_encrypted == ""


def test_clear_and_new_password_together_are_refused(editor_client):
    connection = ConnectionFactory(password=PASSWORD)
    stored = connection.password_encrypted

    response = editor_client.post(
        url_of("change", connection),
        change_form(connection, clear_password="on", password="another-one"),
    )

    assert response.status_code == 200
    assert "Either type a new password or clear it" in response.content.decode()
    assert "another-one" not in response.content.decode()
    connection.refresh_from_db()
    assert connection.password_encrypted == stored


def test_password_typed_into_the_url_is_moved_out_and_never_echoed(editor_client):
    with_password = f"postgresql://diffmig:{QUOTED_PASSWORD}@127.0.0.1:5432/clinic"

    refused = editor_client.post(
        url_of("add"), add_form(url=with_password, password="", timezone="Not/AZone")
    )
    assert refused.status_code == 200
    assert "is not a time zone name" in refused.content.decode()
    assert PASSWORD not in refused.content.decode()
    assert QUOTED_PASSWORD not in refused.content.decode()
    assert not Connection.objects.exists()

    saved = editor_client.post(url_of("add"), add_form(url=with_password, password=""))
    assert saved.status_code == 302
    connection = Connection.objects.get()
    assert connection.url == "postgresql://diffmig@127.0.0.1:5432/clinic"
    assert decrypt_secret(connection.password_encrypted) == PASSWORD


def test_connection_name_cannot_be_renamed(editor_client):
    connection = ConnectionFactory(name="legacy", password=PASSWORD)

    response = editor_client.post(
        url_of("change", connection), {**change_form(connection), "name": "x"}
    )

    assert response.status_code == 302
    assert list(Connection.objects.values_list("name", flat=True)) == ["legacy"]


@pytest.mark.parametrize("persona_client", ["auditor_client", "operator_client"])
def test_auditor_and_operator_cannot_add_change_or_delete_a_connection(request, persona_client):
    client = request.getfixturevalue(persona_client)
    connection = ConnectionFactory(password=PASSWORD)
    before = list(Connection.objects.values())

    assert client.get(url_of("add")).status_code == 403
    assert client.post(url_of("add"), add_form(name="other")).status_code == 403
    changed = change_form(connection, password="stolen", clear_password="on")
    assert client.post(url_of("change", connection), changed).status_code == 403
    assert client.post(url_of("delete", connection), {"post": "yes"}).status_code == 403
    page = client.get(url_of("change", connection)).content.decode()
    assert 'name="password"' not in page
    assert 'name="clear_password"' not in page

    assert list(Connection.objects.values()) == before
    assert LogEntry.objects.count() == 0


def test_rotate_fernet_keys_re_encrypts_under_the_new_key():
    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    with override_settings(DIFFMIG_FERNET_KEYS=[old_key]):
        first = ConnectionFactory(password=PASSWORD)
        second = ConnectionFactory(password="second-secret")
        ConnectionFactory(password="")  # nothing to rotate
        old_tokens = {first.pk: first.password_encrypted, second.pk: second.password_encrypted}

    output = io.StringIO()
    with override_settings(DIFFMIG_FERNET_KEYS=[new_key, old_key]):
        call_command("rotate_fernet_keys", stdout=output)

    assert output.getvalue() == "re-encrypted 2 connection password(s) under the first key\n"

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.password_encrypted != old_tokens[first.pk]
    assert second.password_encrypted != old_tokens[second.pk]
    with override_settings(DIFFMIG_FERNET_KEYS=[new_key]):
        assert decrypt_secret(first.password_encrypted) == PASSWORD
        assert decrypt_secret(second.password_encrypted) == "second-secret"
    with override_settings(DIFFMIG_FERNET_KEYS=[old_key]), pytest.raises(ConfigurationError):
        decrypt_secret(first.password_encrypted)


def test_migration_0006_moves_query_passwords_out_of_stored_urls():
    import importlib

    from django.apps import apps

    migration = importlib.import_module("migrationsapp.migrations.0006_connection_query_passwords")
    Connection.objects.create(
        name="old", url=f"postgresql://app@127.0.0.1/db?sslmode=require&password={QUOTED_PASSWORD}"
    )
    kept = ConnectionFactory(name="kept", password="given-on-purpose")
    Connection.objects.filter(pk=kept.pk).update(url=f"{kept.url}?passwd=other")

    migration.move_query_passwords(apps, None)

    old = Connection.objects.get(name="old")
    assert old.url == "postgresql://app@127.0.0.1/db?sslmode=require"
    assert decrypt_secret(old.password_encrypted) == PASSWORD
    kept.refresh_from_db()
    assert "passwd" not in kept.url
    assert decrypt_secret(kept.password_encrypted) == "given-on-purpose"
