"""The role groups as the data migration makes them, for tests that run after a flush."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

from migrationsapp.roles import ROLE_PERMISSIONS


def role_group(name: str) -> Group:
    """The group ``name`` with exactly its permissions (a transactional test's flush empties
    the groups the data migration created)."""
    group, created = Group.objects.get_or_create(name=name)
    if created or not group.permissions.exists():
        group.permissions.set(
            Permission.objects.filter(
                content_type__app_label="migrationsapp", codename__in=ROLE_PERMISSIONS[name]
            )
        )
    return group
