"""verify's parent UUIDs: each parent key is asked of the record map once, keys without a live
entry are asked again, the answers are the lookup's own, and what is kept stays bounded."""

from __future__ import annotations

import uuid

import pytest

from migrationsapp.engine.verify_parents import ParentUUIDs


class RecordMap:
    """The live entries of a few parents, and every lookup made of them."""

    def __init__(self) -> None:
        self.live: dict[str, dict[str, uuid.UUID]] = {
            "doctor": {str(i): uuid.UUID(int=i) for i in range(1, 100)},
            "office": {"1": uuid.UUID(int=1001)},
        }
        self.asked: list[tuple[str, set[str]]] = []

    def live_uuids(self, entity: str, key_texts) -> dict[str, uuid.UUID]:
        self.asked.append((entity, set(key_texts)))
        known = self.live.get(entity, {})
        return {key: known[key] for key in key_texts if key in known}


def test_a_parent_key_is_asked_once_and_the_answers_are_the_lookups():
    record_map = RecordMap()
    parents = ParentUUIDs(record_map.live_uuids)
    assert parents("doctor", {"1", "2", "x"}) == {"1": uuid.UUID(int=1), "2": uuid.UUID(int=2)}
    assert parents("doctor", ["2", "3", "x"]) == {"2": uuid.UUID(int=2), "3": uuid.UUID(int=3)}
    assert parents("office", {"1", "2"}) == {"1": uuid.UUID(int=1001)}
    assert parents("doctor", {"1", "2", "3"}) == {str(i): uuid.UUID(int=i) for i in (1, 2, 3)}
    # "x" has no live entry: asked again; a key already found is not.
    assert record_map.asked == [
        ("doctor", {"1", "2", "x"}),
        ("doctor", {"3", "x"}),
        ("office", {"1", "2"}),
    ]


def test_a_parent_written_after_a_miss_is_found_the_next_time():
    record_map = RecordMap()
    parents = ParentUUIDs(record_map.live_uuids)
    assert parents("office", {"2"}) == {}
    record_map.live["office"]["2"] = uuid.UUID(int=1002)
    assert parents("office", {"2"}) == {"2": uuid.UUID(int=1002)}


def test_past_its_capacity_only_the_newest_half_is_kept():
    record_map = RecordMap()
    parents = ParentUUIDs(record_map.live_uuids, capacity=10)
    for start in range(1, 90, 5):
        keys = {str(i) for i in range(start, start + 5)}
        assert parents("doctor", keys) == {k: uuid.UUID(int=int(k)) for k in keys}
    record_map.asked.clear()
    every = {str(i) for i in range(1, 95)}
    assert parents("doctor", every) == {k: uuid.UUID(int=int(k)) for k in every}
    ((_, asked),) = record_map.asked
    # At most 10 keys were kept, the newest: 86 to 90 (the last batch) among them.
    assert len(every - asked) <= 10
    assert {"86", "87", "88", "89", "90"} <= every - asked


def test_a_capacity_below_one_is_refused():
    with pytest.raises(ValueError):
        ParentUUIDs(RecordMap().live_uuids, capacity=0)
