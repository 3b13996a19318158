"""Record keys and destination UUIDs.

A legacy key is one or more column values. It has two forms:

* the typed form, a JSON list (``[42]``, ``["NEW/ 1,2"]``, ``[1007, 3]``), kept for fetching
  the row again by its real column types;
* the text form for people and the CLI: values joined by ``/``, with ``\\`` escaping ``/`` and
  ``\\`` inside a value (``42``, ``1007/3``, ``NEW\\/ 1,2``). It is injective, so it also serves
  as the exact (binary) identity of a record in the record map.

A new record's destination UUID is derived from the entity and the key text (uuid5), so a
replayed batch writes the same rows.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

# Fixed namespace of diffmig's deterministic UUIDs. Never change it: every destination row
# created without a record map entry depends on it.
UUID_NAMESPACE = uuid.UUID("5d3c8c0e-2a52-4f0b-9a53-6f1a0f1d2c77")

KEY_SEPARATOR = "/"
ESCAPE = "\\"


def value_text(value: Any) -> str:
    """The text of one key value, as people read it."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _escape(text: str) -> str:
    return text.replace(ESCAPE, ESCAPE + ESCAPE).replace(KEY_SEPARATOR, ESCAPE + KEY_SEPARATOR)


def encode_key(values: Sequence[Any]) -> str:
    """The `/` text of a key: ``encode_key([1007, 3]) == "1007/3"``."""
    if not values:
        raise ValueError("a key has at least one value")
    return KEY_SEPARATOR.join(_escape(value_text(v)) for v in values)


def decode_key(text: str) -> list[str]:
    """Split a key's text back into its values (as text), undoing the escapes."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch == ESCAPE:
            nxt = next(chars, None)
            if nxt is None:
                raise ValueError(f"key {text!r} ends with a lone escape character")
            current.append(nxt)
        elif ch == KEY_SEPARATOR:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def storage_values(values: Iterable[Any]) -> list[Any]:
    """The typed form of a key as JSON-safe values (ints and strings stay as they are)."""
    out: list[Any] = []
    for v in values:
        if v is None or isinstance(v, bool | int | str):
            out.append(v)
        elif isinstance(v, float) and v.is_integer():
            out.append(int(v))
        else:
            out.append(value_text(v))
    return out


# json.dumps's own encoder of a string (ensure_ascii, the default): the same text, without
# building a list and an encoder for every key.
_json_string = json.encoder.encode_basestring_ascii


# The types whose ``str`` is a key value's text as it is, when that text holds neither the
# separator nor the escape (an int's never does).
_PLAIN_TYPES = frozenset({int, str})


def plain_key_texts(values: Sequence[Any]) -> list[str] | None:
    """The texts of ``values`` when none needs escaping: each is an integer, or text without
    ``/`` and ``\\``, written as it is; None when one is anything else (``encode_key`` writes
    those). This is the one rule by which a key skips ``encode_key``.

    ``values`` is a column of a batch's keys (or one key's values): the rule is checked for
    them all at once, by builtins (their types as a set, their texts joined), so a batch pays
    no Python call per value. ``key_forms`` and ``key_texts.value_key_text``, which take one
    key at a time, apply the same rule inline; tests hold all three to ``encode_key``.
    """
    kinds = set(map(type, values))
    if not kinds or not kinds <= _PLAIN_TYPES:
        return None
    texts = list(map(str, values))
    if str in kinds:
        joined = "".join(texts)
        if KEY_SEPARATOR in joined or ESCAPE in joined:
            return None
    return texts


def key_forms(key: Sequence[Any]) -> tuple[str, str]:
    """A key's text and typed form at once: ``(encode_key(key), json.dumps(storage_values(key)))``.

    An analysis takes both for every source row. A key whose values all need no escaping
    (``plain_key_texts``'s rule, applied value by value here: a call or a list per value cost
    more than the rule itself on a key of one or two values) is written out directly; any
    other value sends the whole key through ``encode_key`` and ``storage_values``.
    """
    if len(key) == 1:
        value = key[0]
        if type(value) is int:
            text = str(value)
            return text, f"[{text}]"
    texts: list[str] = []
    typed: list[str] = []
    for value in key:
        kind = type(value)
        if kind is int:
            text = str(value)
            typed.append(text)
        elif kind is str and KEY_SEPARATOR not in value and ESCAPE not in value:
            text = value
            typed.append(_json_string(value))
        else:
            return encode_key(key), json.dumps(storage_values(key))
        texts.append(text)
    if not texts:
        raise ValueError("a key has at least one value")
    return KEY_SEPARATOR.join(texts), "[" + ", ".join(typed) + "]"


def destination_uuid(entity: str, key_text: str) -> uuid.UUID:
    """The deterministic UUID of a record that has no record map entry yet."""
    return uuid.uuid5(UUID_NAMESPACE, f"{entity}\x00{key_text}")
