"""Adoption decisions and the second pass of `reference: self`, with in-memory ports.

The ports here are the engine's own boundary (a destination writer, the record map), given
plain in-memory versions as the engine is designed for; the real ones are exercised in
tests/integration/test_adoption.py and test_self_reference.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from migrationsapp.engine.adopt import adopt_existing
from migrationsapp.engine.ports import StopRequest
from migrationsapp.engine.selfref import LinkBatchResult, PendingLink, SelfLinker

U = [uuid.UUID(int=i) for i in range(10)]


class MemoryTable:
    """The part of a DestinationWriter that adoption and the second pass use."""

    key_column = "id"

    def __init__(self, rows: dict[uuid.UUID, dict[str, Any]]) -> None:
        self.rows = rows
        self.refuse: dict[uuid.UUID, str] = {}

    def rows_matching(self, columns, values):
        found: dict[tuple, list[uuid.UUID]] = {}
        for wanted in values:
            for row_id, row in self.rows.items():
                if tuple(row.get(c) for c in columns) == wanted:
                    found.setdefault(wanted, []).append(row_id)
        return found

    def update_columns(self, rows: Sequence[dict], columns: Sequence[str]):
        refused = {}
        for row in rows:
            if row["id"] in self.refuse:
                refused[row["id"]] = self.refuse[row["id"]]
                continue
            self.rows[row["id"]].update({c: row[c] for c in columns})
        return refused


class MemoryPorts:
    def __init__(self, record_map: dict[str, uuid.UUID], links: Sequence[PendingLink] = ()) -> None:
        self.record_map = record_map
        self.links = list(links)
        self.committed: list[LinkBatchResult] = []

    def keys_of_uuids(self, entity: str, uuids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
        return {u: k for k, u in self.record_map.items() if u in set(uuids)}

    def lookup_uuids(self, entity, key_texts, *, include_deleted):
        return {k: self.record_map[k] for k in key_texts if k in self.record_map}

    def read_links(self, *, after_id: int, limit: int) -> list[PendingLink]:
        return [link for link in self.links if link.change_id > after_id][:limit]

    def commit_links(self, result: LinkBatchResult) -> None:
        self.committed.append(result)

    def stop_requested(self) -> StopRequest:
        return StopRequest.NONE


def adopt(table: MemoryTable, ports: MemoryPorts, candidates, match_on=("email",)):
    return adopt_existing(
        entity="customer", match_on=match_on, writer=table, ports=ports, candidates=candidates
    )


def test_a_new_record_adopts_the_row_that_matches():
    table = MemoryTable({U[1]: {"email": "ann@x"}})
    result = adopt(table, MemoryPorts({}), [("7", U[7], {"email": "ann@x"})])
    assert result.uuids == {"7": U[1]}
    assert result.notes == {"7": "adopted existing destination row by match_on (email)"}
    assert result.errors == {}


def test_null_values_and_no_match_adopt_nothing():
    table = MemoryTable({U[1]: {"email": None}})
    result = adopt(table, MemoryPorts({}), [("7", U[7], {"email": None}), ("8", U[8], {})])
    assert (result.uuids, result.errors) == ({}, {})


def test_the_records_own_row_is_no_adoption():
    # A batch replayed after a crash finds the row it wrote itself, under its own UUID.
    table = MemoryTable({U[7]: {"email": "ann@x"}})
    result = adopt(table, MemoryPorts({}), [("7", U[7], {"email": "ann@x"})])
    assert (result.uuids, result.errors) == ({}, {})


def test_a_row_already_in_the_record_map_is_not_adopted_twice():
    table = MemoryTable({U[1]: {"email": "ann@x"}})
    result = adopt(table, MemoryPorts({"3": U[1]}), [("7", U[7], {"email": "ann@x"})])
    assert result.uuids == {}
    assert "already the record of customer '3'" in str(result.errors["7"])
    assert result.errors["7"].rule == "match_on"


def test_two_records_of_one_batch_cannot_adopt_one_row():
    table = MemoryTable({U[1]: {"email": "ann@x"}})
    candidates = [("7", U[7], {"email": "ann@x"}), ("8", U[8], {"email": "ann@x"})]
    result = adopt(table, MemoryPorts({}), candidates)
    assert result.uuids == {"7": U[1]}
    assert "already the record of customer '7'" in str(result.errors["8"])


def test_several_matching_rows_are_refused_rather_than_guessed():
    table = MemoryTable({U[1]: {"email": "ann@x"}, U[2]: {"email": "ann@x"}})
    result = adopt(table, MemoryPorts({}), [("7", U[7], {"email": "ann@x"})])
    assert "matches 2 destination rows" in str(result.errors["7"])


def test_match_on_several_columns_names_them_all():
    table = MemoryTable({U[1]: {"country": "FR", "vat": "123"}})
    candidates = [("7", U[7], {"country": "FR", "vat": "123"})]
    result = adopt(table, MemoryPorts({}), candidates, match_on=("country", "vat"))
    assert result.notes["7"] == "adopted existing destination row by match_on (country, vat)"


def link(change_id: int, key: str, row: uuid.UUID, **columns: str) -> PendingLink:
    return PendingLink(
        change_id=change_id, key=[key], key_text=key, content_hash="h", uuid=row, columns=columns
    )


def test_the_second_pass_points_rows_at_their_parents_and_fails_the_orphans():
    table = MemoryTable({U[1]: {"boss": None}, U[2]: {"boss": None}, U[3]: {"boss": None}})
    links = [
        link(10, "1", U[1], boss="2"),  # a cycle: 1 -> 2 -> 1
        link(11, "2", U[2], boss="1"),
        link(12, "3", U[3], boss="9"),  # 9 failed in this run: not in the record map
    ]
    ports = MemoryPorts({"1": U[1], "2": U[2], "3": U[3]}, links)
    outcome = SelfLinker(entity="employee", writer=table, ports=ports, batch_size=2).run(after_id=0)
    assert (outcome.status, outcome.batches, outcome.failed, outcome.last_change_id) == (
        "done",
        2,
        1,
        12,
    )
    assert table.rows == {U[1]: {"boss": U[2]}, U[2]: {"boss": U[1]}, U[3]: {"boss": None}}
    failure = ports.committed[1].failures[0]
    assert (failure.key_text, failure.action, failure.uuid) == ("3", "failed", U[3])
    assert failure.error.rule == "reference" and failure.error.field == "boss"
    assert "missing parent: employee '9' was not migrated" in failure.error.reason


def test_the_second_pass_fails_one_row_the_destination_refuses():
    table = MemoryTable({U[1]: {"boss": None}, U[2]: {"boss": None}})
    table.refuse[U[1]] = "destination refused the row: a trigger said no"
    ports = MemoryPorts({"1": U[1], "2": U[2]}, [link(1, "1", U[1], boss="2")])
    SelfLinker(entity="employee", writer=table, ports=ports).run(after_id=0)
    (result,) = ports.committed
    assert (result.linked, [f.key_text for f in result.failures]) == (0, ["1"])
    assert result.failures[0].error.rule == "destination"
