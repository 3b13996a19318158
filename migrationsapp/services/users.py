"""Who did something, as the control database stores it and the logs say it: one rule.

A human action stores the username of the signed-in user who asked. With no such user (none
given, an anonymous one, an empty username) it stores ``someone``, never an empty name: an
empty ``resolved_by`` means a run resolved the quarantine entry, and an action by a person
must not read as one by a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

UNKNOWN_USER = "someone"


def username(user: AbstractBaseUser | AnonymousUser | None) -> str:
    """The username of the signed-in ``user``, or ``someone``."""
    name = user.get_username() if user is not None and user.is_authenticated else ""
    return name or UNKNOWN_USER
