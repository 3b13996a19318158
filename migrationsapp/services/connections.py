"""Storing and opening connections: passwords encrypted, hosts and files checked."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit

from django.db import transaction

from migrationsapp.models import Connection
from migrationsapp.services.secrets import decrypt_secret, encrypt_secret, rotate_secret


def split_password(url: str) -> tuple[str, str]:
    """The URL without its password, and the password (``""`` when there is none)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, ""
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(unquote(user), safe='')}@{host}" if user else host
    if parts.port:
        netloc += f":{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, unquote(parts.password)


def join_password(url: str, password: str) -> str:
    """Put a password back into a URL that has a user."""
    if not password:
        return url
    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(unquote(user), safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


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

    ``password=None`` keeps the stored password; ``""`` clears it.
    """
    clean_url, url_password = split_password(url)
    connection, _ = Connection.objects.get_or_create(name=name, defaults={"url": clean_url})
    connection.url = clean_url
    connection.timezone = timezone or "UTC"
    connection.schema = schema or ""
    new_password = url_password or password
    if new_password is not None:
        connection.password_encrypted = encrypt_secret(new_password)
    connection.save()
    return connection


def connection_url(connection: Connection) -> str:
    """The URL to connect with (still holding any ``${DIFFMIG_…}`` placeholders)."""
    return join_password(connection.url, decrypt_secret(connection.password_encrypted))


def rotate_connection_passwords() -> int:
    """Re-encrypt every stored password under the first key; returns how many."""
    count = 0
    for connection in Connection.objects.exclude(password_encrypted="").select_for_update():
        connection.password_encrypted = rotate_secret(connection.password_encrypted)
        connection.save(update_fields=["password_encrypted", "updated_at"])
        count += 1
    return count
