"""The sign-in throttle (django-axes): one user guessed from one address is locked out.

After ``AXES_FAILURE_LIMIT`` (``DIFFMIG_LOGIN_FAILURE_LIMIT``, 5) wrong passwords for one
user from one address, that pair gets a 429 page saying when to retry, even with the right
password, on both sign-in pages, until the cool-off has passed. The attempts live in the
database, so each test starts with none.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client

from tests.factories import USER_PASSWORD, UserFactory
from tests.support.reliability import record

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
ATTACKER = "203.0.113.7"
COLLEAGUE = "198.51.100.20"


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", is_staff=True)


def sign_in(client: Client, url: str, password: str):
    return client.post(url, {"username": "alice", "password": password, "next": "/"})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_right_password_is_refused_after_fifty_wrong_ones(alice):
    client = Client(REMOTE_ADDR=ATTACKER)
    limit = settings.AXES_FAILURE_LIMIT
    codes = [sign_in(client, LOGIN, f"guess-{n}").status_code for n in range(50)]
    # The wrong passwords before the limit get the form again; the limit's one and every
    # later attempt the lockout page.
    assert codes == [200] * (limit - 1) + [429] * (50 - limit + 1)

    locked = sign_in(client, LOGIN, USER_PASSWORD)
    assert locked.status_code == 429
    assert not signed_in(client)
    page = locked.content.decode()
    assert "Too many failed sign-ins" in page
    assert "refused for 15 minutes, even with the right password" in page
    assert "Try again after" in page
    assert locked["Retry-After"] == str(15 * 60)
    record(
        "web",
        "password guessing on the sign-in page",
        tried=51,
        held=51,
        outcome=f"locked after {limit} failures; the right password refused while locked",
    )


def test_the_admin_sign_in_page_is_throttled_too(alice):
    client = Client(REMOTE_ADDR=ATTACKER)
    limit = settings.AXES_FAILURE_LIMIT
    codes = [sign_in(client, ADMIN_LOGIN, "wrong").status_code for _ in range(limit)]
    assert codes == [200] * (limit - 1) + [429]
    assert sign_in(client, ADMIN_LOGIN, USER_PASSWORD).status_code == 429
    # The lock is the user's from that address, whichever page it came through.
    assert sign_in(client, LOGIN, USER_PASSWORD).status_code == 429
    assert not signed_in(client)
    record(
        "web",
        "password guessing on the admin's sign-in page",
        tried=limit + 2,
        held=limit + 2,
        outcome="locked the same way; the lock holds on both sign-in pages",
    )


def test_the_lock_is_per_user_and_address(alice):
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(attacker, LOGIN, "wrong")
    assert sign_in(attacker, LOGIN, USER_PASSWORD).status_code == 429

    # Alice at her own desk still signs in, and so does another user from the attacker's address.
    colleague = Client(REMOTE_ADDR=COLLEAGUE)
    assert sign_in(colleague, LOGIN, USER_PASSWORD).status_code == 302
    assert signed_in(colleague)
    UserFactory(username="bob")
    neighbour = Client(REMOTE_ADDR=ATTACKER)
    response = neighbour.post(LOGIN, {"username": "bob", "password": USER_PASSWORD})
    assert response.status_code == 302
    assert signed_in(neighbour)


def test_the_right_password_works_again_after_the_cool_off(alice):
    client = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, LOGIN, "wrong")
    assert sign_in(client, LOGIN, USER_PASSWORD).status_code == 429

    # Let the cool-off pass: the last attempt moves back by that much and a second.
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time
        - settings.AXES_COOLOFF_TIME
        - timedelta(seconds=1)
    )
    response = sign_in(client, LOGIN, USER_PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_a_success_below_the_limit_forgets_the_failures(alice):
    client = Client(REMOTE_ADDR=ATTACKER)
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert sign_in(client, LOGIN, "typo").status_code == 200
    assert sign_in(client, LOGIN, USER_PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    # A fresh count: limit - 1 more typos still leave the form, not the lockout page.
    for _ in range(limit - 1):
        assert sign_in(client, LOGIN, "typo").status_code == 200
    assert sign_in(client, LOGIN, USER_PASSWORD).status_code == 302
