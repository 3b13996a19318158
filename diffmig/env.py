"""Reading settings from the environment, with errors that say what is wrong."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no)")


def env_list(name: str, default: str) -> list[str]:
    raw = os.environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number") from exc


class SettingError(ImproperlyConfigured):
    """A setting that cannot serve: the message names it, ``hint`` says what to write instead."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


DATABASE_URL_FORMS = (
    "postgresql://user@host:5432/dbname, sqlite:///var/control.sqlite3 (three slashes: "
    "relative to the project folder) or sqlite:////srv/diffmig/control.sqlite3 (four: absolute)"
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_USERINFO_PASSWORD = re.compile(r"^([^:/?#]*://[^:/?#@]*):[^@/?#]*@")


def _shown(url: str) -> str:
    """``url`` as an error message may quote it: without its password."""
    if "://" not in url and "@" in url:
        # No scheme, so no telling where a password ends: hide all that precedes the host.
        return "***@" + url.rpartition("@")[2]
    return _USERINFO_PASSWORD.sub(r"\1:***@", url)


def database_from_url(url: str, *, base_dir: Path) -> dict:
    """A Django DATABASES entry from ``postgresql://…`` or ``sqlite:///path``.

    Anything else is refused with a ``SettingError`` whose hint gives the URL to write: a
    bare path, ``sqlite://`` with two slashes (its first folder would be taken for a host and
    dropped), another kind of database, a port that is not a number.
    """
    text = url.strip()
    match = _SCHEME.match(text)
    if match is None:
        shown = _shown(text)
        raise SettingError(
            f"DATABASE_URL={shown!r} is not a URL",
            hint="a URL starts with its kind: postgresql://user@host:5432/dbname"
            if "@" in text
            else f"for a SQLite file write sqlite:///{shown} (a relative path is relative to "
            "the project folder); for PostgreSQL postgresql://user@host:5432/dbname",
        )
    parts = urlsplit(text)
    scheme = match.group(1).lower().split("+")[0]
    if scheme == "sqlite":
        if parts.netloc:
            # sqlite://var/x.db: urlsplit takes "var" for a host, and the file would be x.db.
            path = _shown(f"{parts.netloc}{parts.path}")
            raise SettingError(
                f"DATABASE_URL={_shown(text)!r} has two slashes after sqlite:, so "
                f"{_shown(parts.netloc)!r} would be read as a host",
                hint=f"write sqlite:///{path} (three slashes: relative to the project folder) "
                f"or sqlite:////{path} (four: absolute)",
            )
        path = unquote(parts.path)
        if not path.strip("/"):
            raise SettingError(
                f"DATABASE_URL={_shown(text)!r} names no file",
                hint="write sqlite:///var/control.sqlite3 (relative to the project folder) "
                "or sqlite:////srv/diffmig/control.sqlite3 (absolute)",
            )
        # sqlite:///relative.db (three slashes) is relative; sqlite:////abs.db is absolute.
        name = Path(path[1:]) if path.startswith("//") else base_dir / path.lstrip("/")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(name),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    if scheme in {"postgres", "postgresql"}:
        try:
            port = parts.port
        except ValueError:
            raise SettingError(
                f"DATABASE_URL={_shown(text)!r}: the port is not a number from 1 to 65535",
                hint="write postgresql://user@host:5432/dbname",
            ) from None
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "CONN_MAX_AGE": 0,
            "OPTIONS": options,
        }
    raise SettingError(
        f"DATABASE_URL scheme {match.group(1)!r} is not supported for the control database "
        "(PostgreSQL or SQLite only)",
        hint=f"write {DATABASE_URL_FORMS}",
    )
