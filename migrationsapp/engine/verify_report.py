"""What ``verify`` reports: the control-database port it reads, the per-entity report.

``EntityVerification`` holds the counts and capped lists of one entity's comparison
(missing, extra, different, quarantined with their destination state, stale); the verifier
(``verify.py``) fills it. No Django here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from .values import json_value

DEFAULT_CAP = 1000

T = TypeVar("T")


# --- ports --------------------------------------------------------------------------------


class MapEntry(NamedTuple):
    """One record map entry: what diffmig last wrote for a legacy key.

    A tuple rather than a dataclass: verify builds one per record and pass, and a tuple is
    built several times faster. The typed key is kept as its JSON text and read on demand
    (only the destination pass needs it, for the few live entries it checks at the source).
    """

    key_text: str
    key_json: str  # the typed form (ids.storage_values) as JSON, to fetch the source row again
    uuid: uuid.UUID
    mapping_version: int
    deleted: bool
    content_hash: str = ""  # of the content last written ("" when unknown)

    @property
    def key(self) -> list[Any]:
        return json.loads(self.key_json)


class VerifyPorts(Protocol):
    """What the verifier reads from the control database."""

    def entries_by_key(
        self, entity: str, key_texts: Collection[str]
    ) -> dict[str, MapEntry]:  # pragma: no cover - protocol
        """Record map entries (live and deleted) of these keys."""

    def entries_by_uuid(
        self, entity: str, uuids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, MapEntry]:  # pragma: no cover - protocol
        """Record map entries (live and deleted) of this entity holding these UUIDs."""

    def quarantined(
        self, entity: str, key_texts: Collection[str]
    ) -> dict[str, str]:  # pragma: no cover - protocol
        """The keys among these that are in open quarantine, with the reason of each."""

    def live_uuids(
        self, entity: str, key_texts: Collection[str]
    ) -> dict[str, uuid.UUID]:  # pragma: no cover - protocol
        """The UUIDs of the live record map entries of these keys (to resolve references)."""

    def live_uuids_unique(self, entity: str) -> bool:  # pragma: no cover - protocol
        """Whether no two live record map entries of this entity hold the same UUID."""


# --- the report ---------------------------------------------------------------------------


@dataclass
class CappedList(Generic[T]):
    """A list that keeps its first ``cap`` items but counts every one."""

    cap: int = DEFAULT_CAP
    items: list[T] = field(default_factory=list)
    total: int = 0

    def add(self, item: T) -> None:
        self.total += 1
        if len(self.items) < self.cap:
            self.items.append(item)

    @property
    def truncated(self) -> bool:
        return self.total > len(self.items)


@dataclass(frozen=True)
class FieldDifference:
    """One destination field whose value differs from the converted source value."""

    key: str
    field: str
    source: Any
    destination: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "field": self.field,
            "source": json_value(self.source),
            "destination": json_value(self.destination),
        }


# The destination state of a quarantined record (see the module docstring).
NOT_MIGRATED = "not_migrated"
Q_MISSING = "missing"
Q_EQUAL = "equal"
Q_DIFFERENT = "different"
SOURCE_CHANGED = "source_changed"
SOURCE_DELETED = "source_deleted"  # gone from the source, its delete failed: the row stays
QUARANTINE_STATES = (NOT_MIGRATED, Q_MISSING, Q_EQUAL, Q_DIFFERENT, SOURCE_CHANGED, SOURCE_DELETED)
# States that are mismatches: the destination is not what the last migration wrote.
QUARANTINE_MISMATCHES = (Q_MISSING, Q_DIFFERENT)


@dataclass(frozen=True)
class QuarantinedState:
    """A quarantined record, why it is quarantined, and what its destination row holds."""

    key: str
    state: str
    reason: str = ""
    fields: tuple[FieldDifference, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "destination": self.state,
            "reason": self.reason,
            "different": [d.as_dict() for d in self.fields],
        }


@dataclass
class EntityVerification:
    """The outcome of verifying one entity."""

    entity: str
    mapping_version: int
    cap: int = DEFAULT_CAP
    compared: int = 0
    quarantined: int = 0
    different_records: int = 0
    seconds: float = 0.0
    missing: CappedList[str] = field(init=False)
    extra: CappedList[str] = field(init=False)
    different: CappedList[FieldDifference] = field(init=False)
    stale: CappedList[str] = field(init=False)
    quarantined_records: CappedList[QuarantinedState] = field(init=False)
    quarantined_states: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.missing = CappedList(self.cap)
        self.extra = CappedList(self.cap)
        self.different = CappedList(self.cap)
        self.stale = CappedList(self.cap)
        self.quarantined_records = CappedList(self.cap)
        self.quarantined_states = dict.fromkeys(QUARANTINE_STATES, 0)

    def add_quarantined(self, record: QuarantinedState) -> None:
        self.quarantined += 1
        self.quarantined_states[record.state] += 1
        self.quarantined_records.add(record)

    @property
    def quarantined_mismatches(self) -> int:
        """Quarantined records whose destination row is gone or differs from what their
        last migrated content gives."""
        return sum(self.quarantined_states[s] for s in QUARANTINE_MISMATCHES)

    @property
    def equal(self) -> bool:
        """No record missing, extra or different, quarantined ones included (stale rows, and
        quarantined rows that are equal, never migrated or changed since, are not)."""
        return not (
            self.missing.total
            or self.extra.total
            or self.different.total
            or self.quarantined_mismatches
        )

    @property
    def truncated(self) -> bool:
        return any(
            lst.truncated
            for lst in (
                self.missing,
                self.extra,
                self.different,
                self.stale,
                self.quarantined_records,
            )
        )

    def counts(self) -> dict[str, int]:
        return {
            "compared": self.compared,
            "missing": self.missing.total,
            "extra": self.extra.total,
            "different": self.different.total,
            "different_records": self.different_records,
            "quarantined": self.quarantined,
            "stale": self.stale.total,
            **{f"quarantined_{state}": n for state, n in self.quarantined_states.items()},
        }

    def as_dict(self) -> dict[str, Any]:
        """The entity's entry of ``verify --json`` (docs/cli.md), plus counts."""
        return {
            "compared": self.compared,
            "missing": list(self.missing.items),
            "extra": list(self.extra.items),
            "different": [d.as_dict() for d in self.different.items],
            "quarantined": self.quarantined,
            "quarantined_records": [q.as_dict() for q in self.quarantined_records.items],
            "stale": list(self.stale.items),
            "mapping_version": self.mapping_version,
            "counts": self.counts(),
            "truncated": self.truncated,
        }
