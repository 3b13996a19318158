"""User regular expressions (``format`` rules, ``regex_replace``) on RE2: linear time, or refused.

Python's ``re`` backtracks: ``(a+)+$`` against a long run of ``a`` followed by ``b`` takes
longer than the age of the universe, holding the interpreter lock all along, so one bad pattern
in a mapping would hang a run, a preview and the web server with it. Every pattern a user
writes is therefore compiled by RE2 (google-re2), whose matching time is linear in the text.
What RE2 cannot run in linear time it does not accept: backreferences (``\\1``, ``(?P=name)``)
and lookaround (``(?=…)``, ``(?!…)``, ``(?<=…)``, ``(?<!…)``). Those patterns are refused when
the mapping is imported, with the reason.

Syntax notes (RE2, https://github.com/google/re2/wiki/Syntax): ``\\d``, ``\\w``, ``\\s`` and
``\\b`` are ASCII (``\\pN``, ``\\pL`` match any Unicode digit or letter); ``\\z`` ends the text
(Python's ``\\Z``); ``(?i)`` and ``(?s)`` flags work, ``(?x)`` does not. ``\\C`` (one byte) is
refused: it would cut characters in half.

Text is matched as UTF-8: NUL bytes and characters beyond the Basic Multilingual Plane match
like any other character; a value that is not valid Unicode (a lone surrogate) fails the row.

The replacement of ``regex_replace`` has one documented syntax: ``\\0`` … ``\\9`` or
``\\g<N>`` insert group N (0 is the whole match), ``\\g<name>`` a named group, ``\\\\`` a
backslash; any other backslash is refused (``\\10`` is group 1, then ``0``). A group that did
not take part in the match inserts nothing. Matches do not overlap; after an empty match the
next search starts one character later (as in RE2 and Rust; Python's ``re.sub`` would first
try a non-empty match at the same place, which only differs for patterns like ``a*|.``).

Replacing every match searches once per match, and a search may read to the end of the text
(``x*y|x`` on a long run of ``x``), so a replacement counts the bytes its searches may read
and fails the row past ``REPLACE_SCAN_LIMIT`` instead of running for minutes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import re2

MAX_PATTERN_LENGTH = 1000
# What the searches of one regex_replace may read, in bytes (each search may read from where it
# starts to the end of the value). Ample for ordinary clean-ups (a 50,000-character text with
# a match in every word); a pattern that re-reads the rest of the value at every match stops
# here after well under a second instead of running for minutes.
REPLACE_SCAN_LIMIT = 300_000_000

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern to stderr


class PatternError(ValueError):
    """A pattern or replacement RE2 cannot run; the message says why, in a user's words."""


def _explain(error: str) -> str:
    """RE2's error text as a reason a mapping editor can act on."""
    code, _, fragment = error.partition(": ")
    if code == "invalid escape sequence" and fragment[1:2].isdigit():
        return (
            f"backreferences ({fragment}) are not supported: patterns are RE2 syntax, "
            "matched in linear time"
        )
    if code == "invalid escape sequence" and fragment == "\\Z":
        return "\\Z is not RE2 syntax; write \\z for the end of the text"
    if code == "invalid perl operator" and fragment in ("(?=", "(?!", "(?<=", "(?<!"):
        return (
            f"lookaround {fragment}…) is not supported: patterns are RE2 syntax, "
            "matched in linear time"
        )
    if code == "invalid perl operator" and fragment == "(?P":
        return (
            "(?P=name) backreferences are not supported: patterns are RE2 syntax, "
            "matched in linear time"
        )
    if code.startswith("pattern too large"):
        return "the pattern is too large for the linear-time engine; simplify it"
    if fragment:
        return f"{code} at {fragment!r} (RE2 syntax)"
    return f"{code} (RE2 syntax)"


def _has_byte_escape(pattern: str) -> bool:
    index = 0
    while index < len(pattern):
        if pattern[index] == "\\":
            if pattern[index + 1 : index + 2] == "C":
                return True
            index += 2
        else:
            index += 1
    return False


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise PatternError(f"{what} is not valid Unicode text") from None


@dataclass(frozen=True, slots=True)
class UserPattern:
    """A pattern RE2 accepted: ``text`` as written, ``groups`` its capturing groups."""

    text: str
    groups: int
    group_index: Mapping[str, int]  # named groups: name -> number
    _regexp: Any

    def fullmatch(self, value: str) -> bool:
        """Whether the whole of ``value`` matches (one linear-time search)."""
        return self._regexp.fullmatch(_utf8(value, "the value")) is not None

    def replace(self, value: str, replacement: Replacement, *, max_length: int) -> str:
        """Every non-overlapping match of ``value`` replaced, as Python's ``re.sub`` does.

        Raises PatternError when the result would be longer than ``max_length`` characters or
        the searches would read more than ``REPLACE_SCAN_LIMIT`` bytes.
        """
        pieces = replacement.resolve(self)
        data = _utf8(value, "the value")
        end = len(data)
        out: list[str] = []
        built = 0
        scanned = 0
        pos = last = 0
        search = self._regexp.search
        while pos <= end:
            scanned += end - pos + 1
            if scanned > REPLACE_SCAN_LIMIT:
                raise PatternError(
                    f"replacing {self.text!r} in a value of {len(value)} characters would read "
                    f"more than {REPLACE_SCAN_LIMIT} bytes; use a simpler pattern"
                )
            match = search(data, pos)
            if match is None:
                break
            start, stop = match.span()
            piece = data[last:start].decode("utf-8") + _expand(pieces, match)
            built += len(piece)
            if built > max_length:
                raise PatternError(f"the result would be longer than {max_length} characters")
            out.append(piece)
            last = stop
            if stop > start:
                pos = stop
            elif stop < end:
                pos = stop + _char_width(data[stop])  # an empty match: step over one character
            else:
                break
        tail = data[last:].decode("utf-8")
        if built + len(tail) > max_length:
            raise PatternError(f"the result would be longer than {max_length} characters")
        out.append(tail)
        return "".join(out)


def _char_width(lead: int) -> int:
    """The length of the UTF-8 character that starts with the byte ``lead``."""
    if lead < 0x80:
        return 1
    if lead < 0xE0:
        return 2
    return 3 if lead < 0xF0 else 4


@functools.lru_cache(maxsize=256)
def compile_pattern(text: str) -> UserPattern:
    """``text`` compiled by RE2; PatternError says why RE2 refuses it."""
    if not isinstance(text, str):
        raise PatternError(f"a pattern is text, not {type(text).__name__}")
    if len(text) > MAX_PATTERN_LENGTH:
        raise PatternError(
            f"the pattern is {len(text)} characters long; the limit is {MAX_PATTERN_LENGTH}"
        )
    if _has_byte_escape(text):
        raise PatternError("\\C (any byte) is not allowed: it would cut characters in half")
    try:
        regexp = re2.compile(_utf8(text, "the pattern"), _OPTIONS)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else ""
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise PatternError(_explain(message)) from None
    index = MappingProxyType(
        {
            (name.decode("utf-8") if isinstance(name, bytes) else name): number
            for name, number in regexp.groupindex.items()
        }
    )
    return UserPattern(text=text, groups=regexp.groups, group_index=index, _regexp=regexp)


# --- replacements ----------------------------------------------------------------------------


class GroupName(str):
    """A group referred to by name in a replacement (``\\g<name>``)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Replacement:
    """A parsed replacement: literal text, group numbers and group names, in order."""

    text: str
    pieces: tuple[str | int, ...]  # str: literal text (GroupName: a named group); int: a group

    def problem(self, pattern: UserPattern) -> str | None:
        """Why this replacement cannot be used with ``pattern`` (a missing group), or None."""
        for piece in self.pieces:
            if isinstance(piece, int) and piece > pattern.groups:
                return (
                    f"the replacement {self.text!r} uses group {piece}, but the pattern "
                    f"{pattern.text!r} has {pattern.groups}"
                )
            if isinstance(piece, GroupName) and piece not in pattern.group_index:
                return (
                    f"the replacement {self.text!r} uses group {str(piece)!r}, which the pattern "
                    f"{pattern.text!r} does not name"
                )
        return None

    def resolve(self, pattern: UserPattern) -> tuple[str | int, ...]:
        """The pieces with group names turned into numbers; PatternError for a missing group."""
        reason = self.problem(pattern)
        if reason:
            raise PatternError(reason)
        return tuple(
            pattern.group_index[piece] if isinstance(piece, GroupName) else piece
            for piece in self.pieces
        )


def _expand(pieces: tuple[str | int, ...], match: Any) -> str:
    if len(pieces) == 1 and isinstance(pieces[0], str):
        return pieces[0]
    parts = []
    for piece in pieces:
        if isinstance(piece, str):
            parts.append(piece)
        else:
            group = match.group(piece)
            if group:
                parts.append(group.decode("utf-8"))
    return "".join(parts)


@functools.lru_cache(maxsize=256)
def parse_replacement(text: str) -> Replacement:
    """Parse a replacement (``\\1``, ``\\g<1>``, ``\\g<name>``, ``\\\\``); PatternError if bad."""
    if not isinstance(text, str):
        raise PatternError(f"the replacement is text, not {type(text).__name__}")
    pieces: list[str | int] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            pieces.append("".join(literal))
            literal.clear()

    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\":
            literal.append(char)
            index += 1
            continue
        following = text[index + 1 : index + 2]
        if following == "\\":
            literal.append("\\")
            index += 2
        elif following.isascii() and following.isdigit():
            flush()
            pieces.append(int(following))
            index += 2
        elif following == "g" and text[index + 2 : index + 3] == "<":
            close = text.find(">", index + 3)
            reference = text[index + 3 : close] if close != -1 else ""
            if not reference:
                raise PatternError(
                    f"the replacement {text!r} has an unfinished group reference \\g<…>"
                )
            flush()
            if reference.isascii() and reference.isdigit():
                pieces.append(int(reference))
            elif reference.isidentifier():
                pieces.append(GroupName(reference))
            else:
                raise PatternError(
                    f"the replacement {text!r} refers to {reference!r}, "
                    "which is neither a group number nor a group name"
                )
            index = close + 1
        else:
            shown = "\\" + following if following else "a trailing \\"
            raise PatternError(
                f"the replacement {text!r} has an unknown escape {shown}: write \\1 or \\g<name> "
                "for a group and \\\\ for a backslash"
            )
    flush()
    return Replacement(text=text, pieces=tuple(pieces) or ("",))
