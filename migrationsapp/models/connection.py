"""Database connections that mappings name (``legacy``, ``target`` …).

The password is never stored in clear: ``url`` holds the URL without it (or with
``${DIFFMIG_…}`` placeholders, which are resolved only when connecting) and
``password_encrypted`` holds it under ``DIFFMIG_FERNET_KEYS`` (see ``services.secrets``);
``services.connections`` clears it when the URL's host, port or database changes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.db import models


class Connection(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    url = models.CharField(max_length=1000, help_text="SQLAlchemy URL without the password")
    password_encrypted = models.TextField(blank=True, default="", editable=False)
    timezone = models.CharField(max_length=64, default="UTC")
    schema = models.CharField(max_length=200, blank=True, default="")
    # The last "Test" of the connection: when, whether it answered, and its server version or
    # the exact error (never a password: errors name the URL redacted).
    last_tested_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_test_ok = models.BooleanField(null=True, blank=True, editable=False)
    last_test_result = models.CharField(max_length=1000, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "migration_connections"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def database(self) -> str:
        parts = urlsplit(self.url)
        if parts.scheme.startswith("sqlite"):
            # sqlite:///rel.db is the relative path rel.db, sqlite:////abs.db the path /abs.db.
            return parts.path[1:]
        return parts.path.lstrip("/")

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)
