"""The mapping's spec objects: ``MappingFile`` → ``EntitySpec`` → ``FieldSpec``, and the
file's vocabulary (allowed keys, enumerations, defaults)."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from migrationsapp.engine.connectors import ConnectionSpec
from migrationsapp.engine.validation import RuleSpec

SUPPORTED_VERSION = 1
DETECTIONS = ("hash", "timestamp", "hybrid")
DELETE_POLICIES = ("hard", "soft", "report")
DEFAULT_MAX_DELETE_SHARE = 0.05
SELF_REFERENCE = "self"
UUID_KIND = "uuid"
PLACEHOLDER_PREFIX = "DIFFMIG_"
ENTITY_NAME = re.compile(r"[a-z0-9_]+\Z")

# Allowed keys, in the order the file writes them (docs/mapping.md, a complete file).
TOP_KEYS = ("version", "connections", "source", "destination", "functions", "entities")
CONNECTION_KEYS = ("url", "timezone", "schema")
# An entity's own settings (what a stored definition keeps besides its rows and connections).
ENTITY_SETTINGS = (
    "source_table",
    "source_key",
    "destination_table",
    "destination_key",
    "depends_on",
    "detection",
    "timestamp_column",
    "deletes",
    "soft_delete_column",
    "max_delete_share",
    "match_on",
)
ENTITY_KEYS = ("name", *ENTITY_SETTINGS, "fields", "validation")
FIELD_KEYS = (
    "source",
    "destination",
    "expression",
    "required",
    "default",
    "reference",
    "transform",
)
RULE_KEYS = ("field", "rule", "params")


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


# "No default given", distinct from ``default: null``. An enum member, so it survives
# pickling and deepcopy as the same object.
MISSING = _Missing.MISSING


class FrozenMap(Mapping[str, str]):
    """A read-only, hashable, picklable mapping (a ``MappingProxyType`` cannot be pickled)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (self._data,))


@dataclass(frozen=True)
class FieldSpec:
    """One destination field: where its value comes from and how it is shaped."""

    destination: str
    source: str | None = None
    expression: str | None = None
    transform: str | None = None
    required: bool = False
    default: Any = MISSING
    reference: str | None = None

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING


@dataclass(frozen=True)
class EntitySpec:
    """One entity of the mapping file, with the named functions it may use."""

    name: str
    source_table: str
    source_key: tuple[str, ...]
    destination_table: str
    destination_key: str = "id"
    depends_on: tuple[str, ...] = ()
    detection: str = "hash"
    timestamp_column: str | None = None
    deletes: str = "hard"
    soft_delete_column: str | None = None
    max_delete_share: float = DEFAULT_MAX_DELETE_SHARE
    match_on: tuple[str, ...] = ()
    fields: tuple[FieldSpec, ...] = ()
    validation: tuple[RuleSpec, ...] = ()
    functions: Mapping[str, str] = dataclass_field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        # Hand-built specs may pass lists and dicts; store the frozen forms so that equality
        # (and "unchanged content → no new version") does not depend on the container type.
        for name in ("source_key", "depends_on", "match_on", "fields", "validation"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if not isinstance(self.functions, FrozenMap):
            object.__setattr__(self, "functions", FrozenMap(self.functions))


@dataclass(frozen=True)
class MappingFile:
    """A whole mapping file."""

    version: int
    connections: dict[str, ConnectionSpec]
    source: str
    destination: str
    functions: dict[str, str]
    entities: tuple[EntitySpec, ...]

    def entity(self, name: str) -> EntitySpec | None:
        return next((e for e in self.entities if e.name == name), None)
