"""Key texts and destination UUIDs for a whole batch, as ``engine.ids`` gives them one by one.

A batch names every record by its key's text (``ids.encode_key``) and gives each new record
the ``uuid5`` of its entity and that text (``ids.destination_uuid``). Most keys are made
of integers and of text without ``/`` or ``\\``, whose text needs no escaping: those take a
shortcut here (``ids.plain_key_text``), every other key goes through ``encode_key`` itself.
A batch's UUIDs hash the part of the name every record shares (namespace, entity) once.
The results are ``engine.ids``'s exactly (tests/unit/test_key_texts.py compares them on
random keys).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from migrationsapp.engine.ids import KEY_SEPARATOR, UUID_NAMESPACE, encode_key, plain_key_text


def value_key_text(value: Any) -> str:
    """``encode_key([value])``: the text of a one-value key."""
    text = plain_key_text(value)
    return text if text is not None else encode_key((value,))


def key_text(values: Sequence[Any]) -> str:
    """``encode_key(values)``."""
    if len(values) == 1:
        return value_key_text(values[0])
    parts = []
    for value in values:
        text = plain_key_text(value)
        if text is None:
            return encode_key(values)  # a value to escape or to write out
        parts.append(text)
    return KEY_SEPARATOR.join(parts) if parts else encode_key(values)


def key_texts(keys: Iterable[Sequence[Any]]) -> list[str]:
    """The text of each key, in order."""
    return [key_text(values) for values in keys]


class DestinationUUIDs:
    """``ids.destination_uuid`` of one entity, the shared start of the name hashed once."""

    __slots__ = ("_start",)

    def __init__(self, entity: str) -> None:
        # uuid5 is SHA-1 by definition (RFC 9562): a name's digest, not a secret's.
        self._start = hashlib.sha1(
            UUID_NAMESPACE.bytes + f"{entity}\x00".encode(), usedforsecurity=False
        )

    def __call__(self, key_text: str) -> uuid.UUID:
        digest = self._start.copy()
        digest.update(key_text.encode())
        return uuid.UUID(bytes=digest.digest()[:16], version=5)
