"""Shared fixtures: one persona per role, and a logged-in client for each; the ``people``
pair of SQLite databases.

Personas are staff users in the groups the data migration creates (``migrationsapp.roles``),
so a test sees exactly what that role sees. ``admin_client`` (a superuser) is pytest-django's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from django.test import Client

from migrationsapp.roles import AUDITORS, MAPPING_EDITORS, OPERATORS
from tests.factories import UserFactory
from tests.support.roles import role_group

if TYPE_CHECKING:
    from tests.support.people import People


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Users are made in almost every test; PBKDF2's deliberate slowness buys nothing here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _persona(username: str, group_name: str):
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(role_group(group_name))
    return user


@pytest.fixture
def editor(db):
    return _persona("editor", MAPPING_EDITORS)


@pytest.fixture
def operator(db):
    return _persona("operator", OPERATORS)


@pytest.fixture
def auditor(db):
    return _persona("auditor", AUDITORS)


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


def _logged_in(user) -> Client:
    # A client of its own per persona: a test may use several roles side by side.
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def editor_client(editor):
    return _logged_in(editor)


@pytest.fixture
def operator_client(operator):
    return _logged_in(operator)


@pytest.fixture
def auditor_client(auditor):
    return _logged_in(auditor)


@pytest.fixture
def people(tmp_path, settings) -> Iterator[People]:
    """The ``people`` → ``person`` pair (``tests.support.people``) under the test's own
    ``DIFFMIG_SQLITE_ROOT``, its mapping imported."""
    # Imported here: the services it loads are not for every test session's start-up.
    from tests.support.people import create_people

    root = tmp_path.resolve()
    settings.DIFFMIG_SQLITE_ROOT = root
    databases = create_people(root)
    databases.import_mapping()
    yield databases
    databases.dispose()
