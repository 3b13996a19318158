"""Adopting destination rows that exist already (``match_on``).

A destination filled before diffmig (by hand, by an earlier tool) holds rows that the
source's records must update, not duplicate. ``match_on`` names destination columns that
identify such a row (a natural key: an email, a national id, an old number). Before a *new*
record (no record-map entry) is inserted, the destination is asked, in one query per batch,
for rows whose match_on columns equal the record's transformed values:

* one row found: the record adopts its UUID. The upsert updates that row, the record map
  keeps the UUID from then on (later runs update it like any migrated row), and the record
  event says so (action ``updated``, reason ``adopted existing destination row …``);
* the row found is the record's own (its deterministic UUID: a batch replayed after a
  crash): an ordinary create;
* the row already belongs to another record (in the record map, deleted ones included, or
  adopted earlier in the same batch): the record fails with the reason, and so does a
  record whose values match several rows (picking one would be a guess);
* a NULL among the values: nothing is adopted (NULL equals nothing); the record is inserted.

The destination compares after converting to the columns' types; a row is then taken only
if its values are exactly the record's (see ``DestinationWriter.rows_matching``). No Django.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import RowError
from .ports import DestinationWriter


class AdoptionPorts(Protocol):
    def keys_of_uuids(self, entity: str, uuids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The legacy key text that holds each UUID in the record map (deleted included)."""


@dataclass
class Adoption:
    """What adoption decided for a batch's new records, by key text."""

    uuids: dict[str, uuid.UUID] = field(default_factory=dict)  # the UUID adopted
    notes: dict[str, str] = field(default_factory=dict)  # the record event's reason
    errors: dict[str, RowError] = field(default_factory=dict)  # why a record fails


def _match_values(values: Mapping[str, Any], match_on: Sequence[str]) -> tuple[Any, ...] | None:
    match = tuple(values.get(column) for column in match_on)
    if any(v is None for v in match):
        return None
    try:
        hash(match)
    except TypeError:
        return None  # a JSON value: no equality worth matching on
    return match


def adopt_existing(
    *,
    entity: str,
    match_on: Sequence[str],
    writer: DestinationWriter,
    ports: AdoptionPorts,
    candidates: Sequence[tuple[str, uuid.UUID, Mapping[str, Any]]],
) -> Adoption:
    """Decide adoption for ``candidates``: ``(key text, own UUID, destination values)`` of the
    batch's records that have no record-map entry, in change-set order."""
    adoption = Adoption()
    if not match_on:
        return adoption
    wanted: dict[str, tuple[Any, ...]] = {}
    for key_text, _, values in candidates:
        match = _match_values(values, match_on)
        if match is not None:
            wanted[key_text] = match
    if not wanted:
        return adoption
    found = writer.rows_matching(match_on, set(wanted.values()))
    others = {u for rows in found.values() for u in rows}
    owners = ports.keys_of_uuids(entity, others) if others else {}
    label = ", ".join(match_on)
    taken: dict[uuid.UUID, str] = {}
    for key_text, own_uuid, _ in candidates:
        match = wanted.get(key_text)
        rows = found.get(match, []) if match is not None else []
        if not rows or own_uuid in rows:
            continue  # nothing to adopt, or the record's own row (a replayed batch)
        shown = match[0] if len(match) == 1 else match
        if len(rows) > 1:
            adoption.errors[key_text] = RowError(
                f"match_on ({label}) = {shown!r} matches {len(rows)} destination rows; "
                "adopting one of them would be a guess — make the destination rows unique "
                "on these columns or choose other match_on columns",
                field=match_on[0],
                rule="match_on",
                value=shown,
            )
            continue
        row = rows[0]
        owner = owners.get(row) or taken.get(row)
        if owner is not None and owner != key_text:
            adoption.errors[key_text] = RowError(
                f"match_on ({label}) = {shown!r}: destination row {row} is already the "
                f"record of {entity} {owner!r}; two source records cannot adopt one row",
                field=match_on[0],
                rule="match_on",
                value=shown,
            )
            continue
        taken[row] = key_text
        adoption.uuids[key_text] = row
        adoption.notes[key_text] = f"adopted existing destination row by match_on ({label})"
    return adoption
