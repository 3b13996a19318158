"""A connection URL as text: its ``${DIFFMIG_…}`` placeholders, its password, how it is shown.

A URL is read with one grammar everywhere (storing, checking, connecting, showing), the one
SQLAlchemy's ``make_url`` applies: after ``scheme://``, a ``:`` before the first ``@`` starts
the password, and the first ``@`` ends it. A password that holds an unencoded ``@``, ``/``,
``?`` or ``#`` reads differently to other parsers (and to people), so such a URL is refused
rather than guessed at; the refusal, like every message, shows the URL through
``redact_url``, which hides everything a password could be made of.

A password is given percent-encoded in the user part, or as one whole ``${DIFFMIG_…}``
placeholder there. That placeholder holds the password itself (not URL-encoded): it is
encoded when the URL is expanded, so any character survives. A URL that is one whole
placeholder takes the variable's text as a URL, password and all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from migrationsapp.engine.errors import ConfigurationError

__all__ = [
    "UrlUserinfo",
    "expand_placeholders",
    "expand_url",
    "hide_url_passwords",
    "is_whole_placeholder",
    "placeholder_names",
    "redact_url",
    "split_userinfo",
    "strip_password",
    "url_target",
    "userinfo_problem",
]

# --- placeholders --------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ALLOWED_PREFIX = "DIFFMIG_"
# DIFFMIG_ variables that are diffmig's own secrets, not connection settings: a URL could
# echo them back in a driver error ("Access denied for user '<value>'").
_RESERVED_VARIABLES = {"DIFFMIG_FERNET_KEYS": "it holds diffmig's own encryption keys"}


def placeholder_names(text: str) -> list[str]:
    """The ``${NAME}`` names in ``text``, in order of first appearance, without repeats."""
    return list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(text)))


def is_whole_placeholder(text: str) -> bool:
    """``text`` is exactly one ``${NAME}``."""
    match = _PLACEHOLDER.fullmatch(text.strip())
    return match is not None


def _check_variable(name: str) -> None:
    if not _VARIABLE_NAME.fullmatch(name):
        raise ConfigurationError(f"${{{name}}} is not a valid placeholder: write ${{DIFFMIG_NAME}}")
    if not name.startswith(_ALLOWED_PREFIX):
        raise ConfigurationError(
            f"${{{name}}} is refused: only {_ALLOWED_PREFIX} variables may be used"
        )
    if name in _RESERVED_VARIABLES:
        raise ConfigurationError(f"${{{name}}} is refused: {_RESERVED_VARIABLES[name]}")


def _check_placeholders(text: str, environ: Mapping[str, str]) -> None:
    for name in placeholder_names(text):
        _check_variable(name)
        if name not in environ:
            raise ConfigurationError(
                f"${{{name}}} is not set: define {name} in the environment diffmig runs in"
            )
    if "${" in _PLACEHOLDER.sub("", text):
        raise ConfigurationError(f"{redact_url(text)!r} has an unterminated ${{…}} placeholder")


def expand_placeholders(text: str, environ: Mapping[str, str]) -> str:
    """Fill every ``${DIFFMIG_NAME}`` from ``environ``; refuse any other or unset name.

    One pass: a value that itself contains ``${…}`` is not expanded again.
    """
    _check_placeholders(text, environ)
    return _PLACEHOLDER.sub(lambda m: environ[m.group(1)], text)


# --- the user part --------------------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_AMBIGUOUS_IN_USERINFO = "/?#"


@dataclass(frozen=True)
class UrlUserinfo:
    """A URL cut around its password: ``head`` + ``:`` + password + ``@`` + ``tail``.

    ``password`` is the raw text (still percent-encoded, or a placeholder); ``None`` when
    the URL has none, and then ``head`` is the whole URL and ``tail`` is empty.
    """

    head: str
    password: str | None
    tail: str

    def without_password(self) -> str:
        return self.head if self.password is None else f"{self.head}@{self.tail}"

    def with_password(self, raw: str) -> str:
        return f"{self.head}:{raw}@{self.tail}" if self.password is not None else self.head


def _after_scheme(text: str) -> int | None:
    """Where the authority starts, or None when the URL has none (``sqlite:///path``)."""
    match = _SCHEME.match(text)
    if match is None or text[match.end() :].startswith("/"):
        return None
    return match.end()


def _password_span(text: str) -> tuple[int, int] | None:
    """Start and end (the first ``@``) of the password, as ``make_url`` reads it."""
    start = _after_scheme(text)
    if start is None:
        return None
    at = text.find("@", start)
    colon = text.find(":", start)
    if at == -1 or colon == -1 or colon > at:
        return None
    return colon + 1, at


def userinfo_problem(text: str) -> str | None:
    """Why the user part of ``text`` cannot be read unambiguously (None when it can)."""
    span = _password_span(text)
    if span is None:
        return None
    start = _after_scheme(text) or 0
    userinfo, rest = text[start : span[1]], text[span[1] + 1 :]
    if any(c in userinfo for c in _AMBIGUOUS_IN_USERINFO) or "@" in rest:
        return (
            "its user part holds an unencoded '@', '/', '?' or '#': percent-encode them in "
            "the user name and password (%40, %2F, %3F, %23), or give the password apart"
        )
    return None


def split_userinfo(text: str) -> UrlUserinfo:
    """Cut ``text`` around its password; refuses a user part that reads two ways."""
    problem = userinfo_problem(text)
    if problem is not None:
        raise ConfigurationError(f"{redact_url(text)} is refused: {problem}")
    span = _password_span(text)
    if span is None:
        return UrlUserinfo(head=text, password=None, tail="")
    start, at = span
    return UrlUserinfo(head=text[: start - 1], password=text[start:at], tail=text[at + 1 :])


def decoded_password(raw: str) -> str:
    return unquote(raw)


def strip_password(text: str) -> str:
    """``text`` without anything that could be its password (to the last ``@``, as
    ``redact_url`` hides it): what a form may echo back of a URL it refused."""
    span = _password_span(text)
    if span is None:
        return text
    return text[: span[0] - 1] + text[text.rfind("@") :]


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
    scheme = match.group(0).removesuffix("://").lower().partition("+")[0]
    kind = {"mariadb": "mysql", "postgres": "postgresql"}.get(scheme, scheme)
    rest = text[match.end() :].partition("?")[0].partition("#")[0]
    authority, slash, path = rest.partition("/")
    host_port = authority.rpartition("@")[2].lower()
    return (kind, host_port, path if slash else "")


# --- expansion ------------------------------------------------------------------------


def expand_url(template: str, environ: Mapping[str, str]) -> str:
    """The URL ``template`` with its placeholders filled from ``environ``.

    A template that is one whole placeholder becomes the variable's text (a URL). Otherwise
    values are put in as they are, except in the user part: a user name or a password from a
    variable is percent-encoded there, so that an ``@`` or ``/`` in it stays part of it.
    """
    _check_placeholders(template, environ)
    if is_whole_placeholder(template):
        return expand_placeholders(template.strip(), environ)

    def encoded(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: quote(environ[m.group(1)], safe=""), text)

    start = _after_scheme(template)
    if start is not None and "@" in template[start:]:
        parts = split_userinfo(template)
        if parts.password is not None:
            head = template[:start] + encoded(parts.head[start:])
            return f"{head}:{encoded(parts.password)}@{expand_placeholders(parts.tail, environ)}"
        at = template.index("@", start)
        user, tail = template[start:at], template[at + 1 :]
        return f"{template[:start]}{encoded(user)}@{expand_placeholders(tail, environ)}"
    return expand_placeholders(template, environ)


# --- showing ----------------------------------------------------------------------------

# Query options whose values are shown: everything else is hidden, since an option name may
# itself be percent-encoded (``pass%77ord``) or unknown.
_SHOWN_OPTIONS = frozenset(
    {"charset", "connect_timeout", "read_timeout", "write_timeout", "sslmode", "timeout"}
)


def _redact_query(query: str) -> str:
    shown = []
    for item in query.split("&"):
        key, sep, _value = item.partition("=")
        if sep and unquote(key).strip().lower() not in _SHOWN_OPTIONS:
            item = f"{key}=***"
        shown.append(item)
    return "&".join(shown)


def redact_url(url: str) -> str:
    """The URL as it may be shown: any password, and any query value that could hold one, is
    ``***``.

    The hidden span runs from the password's start to the *last* ``@`` of the URL, so that
    a password with an unencoded ``@`` or ``/`` is hidden whole, however it would be parsed.
    """
    span = _password_span(url)
    if span is not None:
        last_at = url.rfind("@")
        url = f"{url[: span[0]]}***{url[last_at:]}"
    url, _, _fragment = url.partition("#")
    base, sep, query = url.partition("?")
    return base + sep + _redact_query(query) if sep else base


# A URL inside free text (a mapping file): up to a space, a quote or a YAML flow delimiter.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'{},]*")


def hide_url_passwords(text: str) -> str:
    """``text`` with every URL in it shown through ``redact_url``, its password taken out: what
    a page may echo back of a mapping file it refused."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(strip_password(m.group(0))), text)
