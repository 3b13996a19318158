"""Storing connections: the password out of the URL and encrypted, and never carried elsewhere.

A password reaches a connection in one of three ways: percent-encoded in the URL's user part
(taken out and stored encrypted), as a whole ``${DIFFMIG_…}`` placeholder there, or a URL that
is one whole placeholder (both stay in the URL and are read from the environment when
connecting; a stored password is then cleared, so an old one cannot follow the new URL), or
typed apart (the admin's password field). A password as a query option (``?password=``) is
refused. When the host, port, database or kind of database changes, the stored password is
cleared: it was given for the old target, never for the new one.

Each save that creates a connection or changes one of its settings writes an audit entry
(``connection.changed``, ``services.change_audit``) naming the settings changed and the
target, never the password.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.db import transaction

from migrationsapp.engine.connection_policy import template_problems
from migrationsapp.engine.connection_urls import (
    decoded_password,
    hide_url_passwords,
    is_whole_placeholder,
    placeholder_names,
    split_userinfo,
    url_target,
)
from migrationsapp.engine.connectors import ConnectionSpec
from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.models import Connection
from migrationsapp.services.change_audit import log_connection_change
from migrationsapp.services.secrets import decrypt_secret, encrypt_secret, rotate_secret

__all__ = [
    "UrlPassword",
    "hide_url_passwords",
    "read_url_password",
    "rotate_connection_passwords",
    "save_connection",
    "spec_for_import",
    "spec_of",
    "url_target",
]


@dataclass(frozen=True)
class UrlPassword:
    """A URL as it is stored (without a literal password) and what it says of the password.

    ``literal``: the password the URL carried (decoded), ``None`` when it carried none.
    ``from_environment``: the URL takes its password from a variable (a whole-URL placeholder
    or a placeholder password), so no password may be stored with it.
    """

    url: str
    literal: str | None
    from_environment: bool


def read_url_password(url: str) -> UrlPassword:
    """Take the password out of ``url``; refuse a URL the policy refuses as written.

    Messages never quote the password, nor the URL unredacted.
    """
    problems = template_problems(url)
    if problems:
        raise ConfigurationError(
            problems[0],
            hint="Write the password percent-encoded in the user part "
            "(mysql://user:p%40ss@host/db), as ${DIFFMIG_…}, or in the password field.",
        )
    if is_whole_placeholder(url):
        return UrlPassword(url=url.strip(), literal=None, from_environment=True)
    parts = split_userinfo(url)
    if parts.password is None:
        return UrlPassword(url=url, literal=None, from_environment=False)
    if placeholder_names(parts.password):
        if not is_whole_placeholder(parts.password):
            raise ConfigurationError(
                "the URL's password mixes a ${…} placeholder with other text: "
                "write the whole password as one ${DIFFMIG_…} placeholder"
            )
        return UrlPassword(url=url, literal=None, from_environment=True)
    return UrlPassword(
        url=parts.without_password(),
        literal=decoded_password(parts.password),
        from_environment=False,
    )


@transaction.atomic
def save_connection(
    *,
    name: str,
    url: str,
    timezone: str = "UTC",
    schema: str = "",
    password: str | None = None,
    actor: str = "",
) -> Connection:
    """Create or update a connection; a password in the URL (or given) is stored encrypted.

    ``password=None`` keeps the stored password (unless the URL's target changed, or the URL
    now takes its password from the environment); ``""`` clears it. ``actor`` (who saved it)
    is named in the audit entry of a save that changed something.
    """
    try:
        read = read_url_password(url)
    except ConfigurationError as exc:
        raise ConfigurationError(f"connection {name!r}: {exc}", hint=exc.hint) from None
    if read.from_environment and password:
        raise ConfigurationError(
            f"connection {name!r}: this URL takes its password from the environment "
            "(${DIFFMIG_…}): leave the password field empty"
        )
    connection = Connection.objects.select_for_update().filter(name=name).first()
    if connection is None:
        connection = Connection(name=name, url=read.url)
    created = connection.pk is None
    before = _settings(connection)
    moved = not created and url_target(connection.url) != url_target(read.url)
    connection.url = read.url
    connection.timezone = timezone or "UTC"
    connection.schema = schema or ""
    new_password = read.literal if read.literal is not None else password
    if read.from_environment:
        connection.password_encrypted = ""
    elif new_password is not None:
        connection.password_encrypted = encrypt_secret(new_password)
    elif moved:
        connection.password_encrypted = ""
    connection.save()
    after = _settings(connection)
    if created:  # what the new connection has set
        changed = [key for key, value in after.items() if value]
    else:
        changed = [key for key in after if before[key] != after[key]]
    if created or changed:
        log_connection_change(
            name=name,
            created=created,
            changed=changed,
            target=_target(connection.url),
            actor=actor,
        )
    return connection


def _settings(connection: Connection) -> dict[str, str]:
    """What a save may change, for comparing before and after (the password decrypted:
    a new token of the same password is no change). Nothing of it is logged but the names."""
    token = connection.password_encrypted
    try:
        password = decrypt_secret(token)
    except ConfigurationError:
        # Encrypted under a key no longer configured: typing it again is how it is
        # recovered, so the save goes on and the token stands for the old password.
        password = token
    return {
        "url": connection.url,
        "timezone": connection.timezone,
        "schema": connection.schema,
        "password": password,
    }


def _target(url: str) -> dict[str, str]:
    """Where a connection points, for its audit entry: never the URL itself, which names
    the user and may carry options."""
    target = url_target(url)
    if target[0] == "environment":
        return {"kind": "environment"}
    if target[0] == "unparsed":
        return {}
    kind, host, database = target
    return {"kind": kind, "host": host, "database": database}


def spec_of(connection: Connection) -> ConnectionSpec:
    """The stored connection, ready to open: its URL and, apart, its decrypted password."""
    return ConnectionSpec(
        name=connection.name,
        url=connection.url,
        timezone=connection.timezone or "UTC",
        schema=connection.schema or None,
        password=decrypt_secret(connection.password_encrypted),
    )


def spec_for_import(spec: ConnectionSpec) -> ConnectionSpec:
    """A mapping file's connection as the import will store it, with the password it will have.

    A URL with no password of its own, for an unchanged target, keeps the stored password
    (so that an exported file imports again); anything else has none stored.
    """
    read = read_url_password(spec.url)
    stored = Connection.objects.filter(name=spec.name).first()
    if (
        read.literal is None
        and not read.from_environment
        and stored is not None
        and url_target(stored.url) == url_target(read.url)
    ):
        return replace(spec, password=decrypt_secret(stored.password_encrypted))
    return spec


def rotate_connection_passwords() -> int:
    """Re-encrypt every stored password under the first key; returns how many."""
    count = 0
    for connection in Connection.objects.exclude(password_encrypted="").select_for_update():
        connection.password_encrypted = rotate_secret(connection.password_encrypted)
        connection.save(update_fields=["password_encrypted", "updated_at"])
        count += 1
    return count
