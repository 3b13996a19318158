"""Key texts and destination UUIDs for a whole batch, as ``engine.ids`` gives them one by one.

A batch names every record by its key's text (``ids.encode_key``) and gives each new record
the ``uuid5`` of its entity and that text (``ids.destination_uuid``). Most keys are made
of integers and of text without ``/`` or ``\\``, whose text needs no escaping: a batch's
keys are taken a column at a time, and a column of such values is its own texts
(``ids.plain_key_texts``); only a column holding another value goes through ``encode_key``
value by value. A key's text is its values' texts joined by ``/``, so the columns' texts
joined key by key are ``encode_key``'s. A batch's UUIDs hash the part of the name every
record shares (namespace, entity) once. The results are ``engine.ids``'s exactly
(tests/unit/test_key_texts.py compares them on random keys).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

from migrationsapp.engine.ids import (
    ESCAPE,
    KEY_SEPARATOR,
    UUID_NAMESPACE,
    encode_key,
    plain_key_texts,
)


def value_key_text(value: Any) -> str:
    """``encode_key([value])``: the text of a one-value key.

    ``ids.plain_key_texts``'s rule for one value, inline: this is called value by value
    (a reference's parent key), where a call more per value would cost more than the rule.
    """
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is str and KEY_SEPARATOR not in value and ESCAPE not in value:
        return value
    return encode_key((value,))


def value_key_texts(values: Sequence[Any]) -> list[str]:
    """``value_key_text`` of each value: a column at once when none needs escaping."""
    texts = plain_key_texts(values)
    return texts if texts is not None else list(map(value_key_text, values))


def key_texts(keys: Iterable[Sequence[Any]]) -> list[str]:
    """The text of each key, in order, a column of the batch at a time."""
    keys = list(keys)
    widths = set(map(len, keys))
    if len(widths) != 1 or 0 in widths:
        # Keys of different lengths (or none): key by key (an empty one is refused there).
        return [encode_key(values) for values in keys]
    (width,) = widths
    columns = [value_key_texts(list(map(itemgetter(i), keys))) for i in range(width)]
    if width == 1:
        return columns[0]
    return list(map(KEY_SEPARATOR.join, zip(*columns, strict=True)))


def key_text(values: Sequence[Any]) -> str:
    """``encode_key(values)``."""
    (text,) = key_texts((values,))
    return text


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
