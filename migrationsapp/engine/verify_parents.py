"""The UUIDs of the parents a verify's references name, asked of the record map once per key.

verify resolves each batch's references through the record map (``VerifyPorts.live_uuids``,
one index probe per distinct parent key and batch). Most parents are named again and again:
a batch of 5,000 appointments names some 4,000 of the same 20,000 doctors, so every batch
probed the record map for doctors it had just resolved (measured on the 1M-patient bench:
64 s of a 307 s verify went to these lookups).

``ParentUUIDs`` stands in front of the lookup: it keeps, per parent entity, the live UUIDs it
was given, and asks only for the keys it does not hold. Past ``capacity`` keys of a parent
entity, only the newest ``capacity // 2`` stay, so memory stays bounded whatever the size of
the tables. A key without a live entry is not kept: it is asked again in the
next batch that names it (a reference verify marks as unresolved is rare, and a parent
written meanwhile is then found, as it was without this cache). No Django here.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from itertools import islice

from .row_pipeline import ParentLookup

# Keys kept per parent entity: a parent table of this many records is resolved once in all
# (about 200 bytes a key: its text, its UUID, the dict's slot).
DEFAULT_CAPACITY = 50_000


class ParentUUIDs:
    """A ``ParentLookup`` that remembers the live UUIDs it found (see the module docstring)."""

    def __init__(self, lookup: ParentLookup, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._lookup = lookup
        self._capacity = capacity
        self._known: dict[str, dict[str, uuid.UUID]] = {}

    def __call__(self, parent: str, key_texts: Collection[str]) -> dict[str, uuid.UUID]:
        """The UUIDs of the live record map entries of ``parent`` among ``key_texts``."""
        known = self._known.setdefault(parent, {})
        wanted = key_texts if isinstance(key_texts, set | frozenset) else set(key_texts)
        held = known.keys() & wanted
        found = dict(zip(held, map(known.__getitem__, held), strict=True))
        missing = wanted - held
        if missing:
            fresh = self._lookup(parent, missing)
            found.update(fresh)
            known.update(fresh)
            if len(known) > self._capacity:
                # The newer half of the capacity stays (a dict keeps its insertion order).
                drop = len(known) - self._capacity // 2
                self._known[parent] = dict(islice(known.items(), drop, None))
        return found
