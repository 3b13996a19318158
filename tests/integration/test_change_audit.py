"""What an administrator changes outside a run is in the execution log: who, what, which versions.

A mapping activated (web editor or admin), a mapping file imported (web or CLI) and a
connection created or edited each write an entry with no session, its action code, the user
as actor and a context naming the entity and versions, or the connection and the settings
that changed; never a password. A refused change writes nothing.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse

from migrationsapp.models import FieldMapping, MigrationExecutionLog, SchemaMappingDefinition
from migrationsapp.services.mapping_versions import clone_definition
from tests.factories import ConnectionFactory
from tests.integration.conftest import cli
from tests.support.people import ENTITY

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

SECRET = "Hunter2-!pw"


@pytest.fixture
def draft(people, editor) -> SchemaMappingDefinition:
    active = SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True)
    return clone_definition(definition_id=active.pk, user=editor)


def entries(action: str) -> list[MigrationExecutionLog]:
    return list(MigrationExecutionLog.objects.filter(action=action).order_by("id"))


def test_activating_a_version_logs_who_activated_it_and_the_version_it_replaced(
    editor_client, draft
):
    before = MigrationExecutionLog.objects.count()

    response = editor_client.post(reverse("mappings:activate", args=[draft.pk]))

    assert response.status_code == 302
    [activated] = entries("mapping.activated")
    [deactivated] = entries("mapping.deactivated")
    assert MigrationExecutionLog.objects.count() == before + 2
    assert (activated.session_id, activated.actor) == (None, "editor")
    assert activated.entity_type == ENTITY
    assert activated.context_data == {
        "entity": ENTITY,
        "version": 2,
        "replaced_version": 1,
        "definition_id": str(draft.pk),
    }
    assert activated.message == f"editor activated {ENTITY} v2 (replacing v1)"
    assert (deactivated.actor, deactivated.context_data) == (
        "editor",
        {"entity": ENTITY, "version": 1, "replaced_by": 2},
    )


def test_a_refused_activation_logs_nothing(editor_client, draft):
    FieldMapping.objects.filter(definition=draft, destination_field="email").update(
        transformation="no_such_function(value)"
    )
    before = MigrationExecutionLog.objects.count()

    editor_client.post(reverse("mappings:activate", args=[draft.pk]))

    assert MigrationExecutionLog.objects.count() == before
    assert SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True).version == 1


def test_the_admins_activate_button_logs_the_admin_user(editor_client, draft):
    editor_client.post(
        reverse("admin:migrationsapp_schemamappingdefinition_activate", args=[quote(draft.pk)])
    )

    [activated] = entries("mapping.activated")
    assert (activated.actor, activated.context_data["version"]) == ("editor", 2)


def test_an_import_logs_each_new_version_and_the_one_it_replaced(editor_client, people):
    [first] = entries("mapping.imported")  # the fixture's own import, by "tests"
    assert (first.actor, first.context_data["created"]) == (
        "tests",
        [{"entity": ENTITY, "version": 1, "replaced_version": None}],
    )
    changed = people.mapping_text.replace("transform: trim", "transform: upper")

    editor_client.post(reverse("mappings:import"), {"text": changed})
    editor_client.post(reverse("mappings:import"), {"text": changed, "dry_run": "on"})

    [_, imported] = entries("mapping.imported")  # the dry run logged nothing
    assert (imported.session_id, imported.actor) == (None, "editor")
    assert imported.context_data["created"] == [
        {"entity": ENTITY, "version": 2, "replaced_version": 1}
    ]
    assert imported.context_data["unchanged"] == []
    assert imported.message == (
        f"editor imported a mapping file: {ENTITY} v2 (replacing v1) now active"
    )


def test_an_import_from_the_command_line_is_logged_with_the_cli_as_actor(people, tmp_path):
    path = tmp_path / "people.yaml"
    path.write_text(people.mapping_text, encoding="utf-8")

    result = cli("mappings", "import", str(path))

    assert result.code == 0, result.err
    last = entries("mapping.imported")[-1]
    assert last.actor == "cli"
    assert last.context_data["created"] == []
    assert last.context_data["unchanged"] == [{"entity": ENTITY, "version": 1}]
    assert last.message == "cli imported a mapping file: no entity changed"


def test_a_connection_edit_logs_the_settings_changed_and_never_the_password(editor_client):
    ConnectionFactory(name="legacy", url="postgresql://app@127.0.0.1:5432/one", password="pw")
    MigrationExecutionLog.objects.all().delete()  # the factory's own save

    response = editor_client.post(
        reverse("connections:edit", args=["legacy"]),
        {
            "url": "postgresql://app@127.0.0.1:5432/one",
            "timezone": "Europe/Paris",
            "schema": "",
            "password": SECRET,
        },
    )

    assert response.status_code == 302
    [entry] = MigrationExecutionLog.objects.all()
    assert (entry.action, entry.actor, entry.session_id) == ("connection.changed", "editor", None)
    assert entry.context_data == {
        "connection": "legacy",
        "created": False,
        "changed": ["timezone", "password"],
        "kind": "postgresql",
        "host": "127.0.0.1:5432",
        "database": "one",
    }
    assert entry.message == "editor changed timezone, password of connection 'legacy'"
    stored = json.dumps([entry.message, entry.context_data, entry.error_details])
    assert SECRET not in stored and "Hunter2" not in stored


def test_saving_a_connection_unchanged_logs_nothing(editor_client):
    ConnectionFactory(name="legacy", url="postgresql://app@127.0.0.1:5432/one", password="pw")
    MigrationExecutionLog.objects.all().delete()

    response = editor_client.post(
        reverse("connections:edit", args=["legacy"]),
        {"url": "postgresql://app@127.0.0.1:5432/one", "timezone": "UTC", "schema": ""},
    )

    assert response.status_code == 302
    assert not MigrationExecutionLog.objects.exists()


def test_a_connection_added_in_the_admin_is_logged_as_created_by_its_user(editor_client):
    editor_client.post(
        reverse("admin:migrationsapp_connection_add"),
        {
            "name": "target",
            "url": f"postgresql://app:{SECRET.replace('!', '%21')}@127.0.0.1:5432/dest",
            "timezone": "UTC",
            "schema": "",
        },
    )

    [entry] = entries("connection.changed")
    assert (entry.actor, entry.context_data["created"], entry.context_data["changed"]) == (
        "editor",
        True,
        ["url", "timezone", "password"],
    )
    assert SECRET not in json.dumps(entry.context_data) and "Hunter2" not in entry.message
