"""The demo's sign-in: a user ``demo`` in the operators group, so that after ``make demo``,
``make serve`` lets a newcomer sign in and launch a run on the demo's databases at once.

On the embedded default (a SQLite control database, outside production) the password is the
fixed, documented ``DEMO_PASSWORD``: that database is a file on the newcomer's own machine.
On any other control database every demo sets a new random password and prints it once: a
password written in the README must never open a shared server.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from axes.utils import reset as reset_sign_in_failures
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from migrationsapp.roles import OPERATORS, ROLE_PERMISSIONS

DEMO_USERNAME = "demo"
# Documented in the README; set only on the embedded default (see the module's docstring).
DEMO_PASSWORD = "diffmig-demo"  # noqa: S105


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    fixed: bool  # the documented password (embedded default) rather than a random one


def embedded_control_database() -> bool:
    """The control database is a local SQLite file and this is not production."""
    engine = settings.DIFFMIG_CONTROL_DATABASE.get("ENGINE", "")
    return engine.endswith("sqlite3") and not getattr(settings, "DIFFMIG_PRODUCTION", False)


def _operators() -> Group:
    """The operators group with its permissions (as the roles migration makes it)."""
    group, created = Group.objects.get_or_create(name=OPERATORS)
    if created or not group.permissions.exists():
        group.permissions.set(
            Permission.objects.filter(
                content_type__app_label="migrationsapp",
                codename__in=ROLE_PERMISSIONS[OPERATORS],
            )
        )
    return group


def ensure_demo_user() -> DemoLogin:
    """Create the demo user, or set its password again; it may launch and control runs."""
    fixed = embedded_control_database()
    password = DEMO_PASSWORD if fixed else secrets.token_urlsafe(12)
    with transaction.atomic():
        user, _ = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
        user.set_password(password)
        user.is_active = True
        user.is_staff = True  # the admin's read-only pages (sessions, logs) are an operator's too
        user.save()
        user.groups.add(_operators())
    # Wrong passwords typed before this demo would keep the new one locked out.
    reset_sign_in_failures(username=DEMO_USERNAME)
    return DemoLogin(username=DEMO_USERNAME, password=password, fixed=fixed)
