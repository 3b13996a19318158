"""A batch's keys sent to PostgreSQL as one array literal: ``'{"a","b"}'``, cast in the SQL.

verify looks a whole batch up by its keys (``… = ANY(%s::text[])``, ``unnest(%s::uuid[])``).
Handed a Python list, the driver dumps the array element by element in Python, which cost
more than the query it sends (measured: 2.5 ms for 5,000 keys, against 0.3 ms for one string
built by ``str.join``). The literal is PostgreSQL's array input syntax: every element in
double quotes, with ``\\`` and ``"`` escaped by a backslash, so any text comes back exactly
(an element spelled ``NULL``, braces, commas and spaces included; text holds no NUL byte in
PostgreSQL). The SQL casts the parameter (``%s::text[]``), which the driver sends as an
untyped value, so the server parses it as the array.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

_QUOTED = '","'


def text_array(texts: Sequence[str]) -> str:
    """The array literal of ``texts`` (each element exactly as given)."""
    joined = "".join(texts)
    if "\\" in joined or '"' in joined:
        texts = [t.replace("\\", "\\\\").replace('"', '\\"') for t in texts]
    return '{"' + _QUOTED.join(texts) + '"}' if texts else "{}"


def uuid_array(uuids: Iterable[uuid.UUID]) -> str:
    """The array literal of ``uuids`` (their canonical text needs no quoting)."""
    return "{" + ",".join(map(str, uuids)) + "}"
