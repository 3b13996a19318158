"""Storing connections: the password out of the URL and encrypted, and never carried elsewhere.

A password reaches a connection in one of three ways: percent-encoded in the URL's user part
(taken out and stored encrypted), as a whole ``${DIFFMIG_…}`` placeholder there, or a URL that
is one whole placeholder (both stay in the URL and are read from the environment when
connecting; a stored password is then cleared, so an old one cannot follow the new URL), or
typed apart (the admin's password field). A password as a query option (``?password=``) is
refused. When the host, port, database or kind of database changes, the stored password is
cleared: it was given for the old target, never for the new one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from django.db import transaction

from migrationsapp.engine.connection_policy import template_problems
from migrationsapp.engine.connection_urls import (
    decoded_password,
    hide_url_passwords,
    is_whole_placeholder,
    placeholder_names,
    split_userinfo,
)
from migrationsapp.engine.connectors import ConnectionSpec
from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.models import Connection
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

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")


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


def url_target(url: str) -> tuple[str, ...]:
    """What a URL points at, as written: kind of database, host and port, database.

    Compared as text (placeholders and all): a stored password stays only while this does.
    """
    text = url.strip()
    if is_whole_placeholder(text):
        return ("environment", text)
    match = _SCHEME.match(text)
    if match is None:
        return ("unparsed", text)
    scheme = match.group(1).lower().partition("+")[0]
    kind = {"mariadb": "mysql", "postgres": "postgresql"}.get(scheme, scheme)
    rest = text[match.end() :].partition("?")[0].partition("#")[0]
    authority, slash, path = rest.partition("/")
    host_port = authority.rpartition("@")[2].lower()
    return (kind, host_port, path if slash else "")


@transaction.atomic
def save_connection(
    *,
    name: str,
    url: str,
    timezone: str = "UTC",
    schema: str = "",
    password: str | None = None,
) -> Connection:
    """Create or update a connection; a password in the URL (or given) is stored encrypted.

    ``password=None`` keeps the stored password (unless the URL's target changed, or the URL
    now takes its password from the environment); ``""`` clears it.
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
    moved = connection.pk is not None and url_target(connection.url) != url_target(read.url)
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
    return connection


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
