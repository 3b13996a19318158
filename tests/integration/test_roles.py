"""The three roles: groups created by the data migration, with exactly their permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from migrationsapp.roles import (
    ALL_MODELS,
    AUDITORS,
    MAPPING_EDITORS,
    MAPPING_MODELS,
    OPERATORS,
    ROLE_PERMISSIONS,
    sync_role_groups,
)

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture(autouse=True)
def _groups_as_the_data_migration_makes_them():
    """Run the data migrations' role sync again when a transactional test ran first here.

    Its flush empties every table, groups included; which module a test process runs first
    depends on how pytest-xdist shares them out. What is checked stays the migrations' own work.
    """
    if Group.objects.filter(name__in=ROLE_PERMISSIONS).count() == len(ROLE_PERMISSIONS):
        return
    sync_role_groups(MigrationExecutor(connection).loader.project_state().apps)


def _group_permissions(name: str) -> set[tuple[str, str]]:
    group = Group.objects.get(name=name)
    return set(group.permissions.values_list("content_type__app_label", "codename"))


def test_the_three_role_groups_exist():
    assert set(Group.objects.filter(name__in=ROLE_PERMISSIONS).values_list("name", flat=True)) == {
        MAPPING_EDITORS,
        OPERATORS,
        AUDITORS,
    }


@pytest.mark.parametrize("group_name", sorted(ROLE_PERMISSIONS))
def test_each_group_holds_exactly_the_permissions_of_its_role(group_name):
    expected = {("migrationsapp", codename) for codename in ROLE_PERMISSIONS[group_name]}
    assert _group_permissions(group_name) == expected


def test_auditors_hold_no_add_change_or_delete_permission():
    codenames = {codename for _, codename in _group_permissions(AUDITORS)}
    assert {c for c in codenames if c.split("_", 1)[0] in {"add", "change", "delete"}} == set()
    assert codenames == {f"view_{model}" for model in ALL_MODELS}


def test_auditor_persona_may_view_every_model_and_change_none(auditor):
    for model in ALL_MODELS:
        assert auditor.has_perm(f"migrationsapp.view_{model}")
        for verb in ("add", "change", "delete"):
            assert not auditor.has_perm(f"migrationsapp.{verb}_{model}")
    assert not auditor.has_perm("migrationsapp.launch_migration")
    assert not auditor.has_perm("migrationsapp.control_migration")


def test_operator_persona_launches_and_controls_runs_but_edits_no_mapping(operator):
    assert operator.has_perm("migrationsapp.launch_migration")
    assert operator.has_perm("migrationsapp.control_migration")
    assert operator.has_perm("migrationsapp.change_quarantinedrecord")
    for model in MAPPING_MODELS:
        assert operator.has_perm(f"migrationsapp.view_{model}")
        for verb in ("add", "change", "delete"):
            assert not operator.has_perm(f"migrationsapp.{verb}_{model}")


def test_editor_persona_edits_mappings_and_connections_but_runs_nothing(editor):
    for model in MAPPING_MODELS:
        for verb in ("view", "add", "change", "delete"):
            assert editor.has_perm(f"migrationsapp.{verb}_{model}")
    assert not editor.has_perm("migrationsapp.launch_migration")
    assert not editor.has_perm("migrationsapp.control_migration")
    assert not editor.has_perm("migrationsapp.change_migrationexecutionlog")


def test_every_permission_a_role_names_exists():
    named = {codename for codenames in ROLE_PERMISSIONS.values() for codename in codenames}
    found = set(
        Permission.objects.filter(
            content_type__app_label="migrationsapp", codename__in=named
        ).values_list("codename", flat=True)
    )
    assert found == named
