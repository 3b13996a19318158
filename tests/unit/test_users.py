"""The one rule that names who did something (services.users), on unsaved users."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User

from migrationsapp.services.users import UNKNOWN_USER, username


def test_a_signed_in_user_is_named_by_their_username():
    assert username(User(username="ann")) == "ann"


def test_no_user_an_anonymous_one_or_an_empty_name_is_someone_never_empty():
    named = [username(None), username(AnonymousUser()), username(User(username=""))]

    assert named == [UNKNOWN_USER] * 3
    assert UNKNOWN_USER == "someone"
