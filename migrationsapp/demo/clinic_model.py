"""The shapes of the clinic data set: legacy rows held in memory and the log of a change round.

The clinic has four entities, in dependency order: office → doctor → patient → appointment.
In memory every legacy table is a dict from the row's key text (docs/mapping.md, made by
``encode_key``) to the row as a dict of column → Python value, with the values exactly as the
legacy database holds them: ``int``, ``str`` (trailing spaces and emoji kept), ``Decimal``,
naive ``datetime``, ``date``, and the MySQL zero date as the string ``'0000-00-00'``.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from migrationsapp.engine.ids import encode_key

Row = dict[str, Any]

ENTITIES: tuple[str, ...] = ("office", "doctor", "patient", "appointment")

LEGACY_TABLES: dict[str, str] = {
    "office": "offices",
    "doctor": "doctors",
    "patient": "patients",
    "appointment": "appointments",
}

DESTINATION_TABLES: dict[str, str] = {entity: entity for entity in ENTITIES}

SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "office": ("id",),
    "doctor": ("id",),
    "patient": ("code",),
    "appointment": ("patient_code", "seq"),
}

LEGACY_COLUMNS: dict[str, tuple[str, ...]] = {
    "office": ("id", "name", "phone", "opened", "notes", "updated_at"),
    "doctor": (
        "id",
        "office_id",
        "first_name",
        "last_name",
        "email",
        "active_flag",
        "salary",
        "hired",
        "updated_at",
    ),
    "patient": ("code", "doctor_id", "name", "birth", "vip", "phone", "updated_at"),
    "appointment": ("patient_code", "seq", "doctor_id", "starts", "note", "updated_at"),
}

ZERO_DATE = "0000-00-00"


def row_key(entity: str, row: Row) -> str:
    """The key text of a legacy row of ``entity`` (``'42'``, ``'NEW\\/ 1,2/3'``)."""
    return encode_key([row[column] for column in SOURCE_KEYS[entity]])


@dataclass
class ClinicData:
    """The legacy clinic as the generator made it and the change rounds left it.

    ``rows[entity][key_text]`` is one legacy row. ``planted[entity][key_text]`` names the rows
    made wrong on purpose (a reason such as ``'email: format'``); they stay listed after a
    change round fixes one of them, which ``unfixed`` tracks instead. ``protected`` lists
    rows that change rounds must not touch besides the planted ones (the first holder of a
    duplicated email), so the planted failures keep failing for the reason they were made.
    """

    seed: int
    scale: int
    rows: dict[str, dict[str, Row]]
    planted: dict[str, dict[str, str]]
    protected: dict[str, set[str]]
    unfixed: list[tuple[str, str]]
    rounds: int = 0
    next_id: dict[str, int] = field(default_factory=dict)

    @property
    def offices(self) -> dict[str, Row]:
        return self.rows["office"]

    @property
    def doctors(self) -> dict[str, Row]:
        return self.rows["doctor"]

    @property
    def patients(self) -> dict[str, Row]:
        return self.rows["patient"]

    @property
    def appointments(self) -> dict[str, Row]:
        return self.rows["appointment"]

    def counts(self) -> dict[str, int]:
        """The number of legacy rows per entity."""
        return {entity: len(self.rows[entity]) for entity in ENTITIES}

    def snapshot(self) -> ClinicData:
        """A deep copy, e.g. taken before ``apply_changes`` to compare before and after."""
        return copy.deepcopy(self)

    def untouchable(self, entity: str) -> set[str]:
        """Keys a change round leaves alone: the planted rows and the protected ones."""
        return set(self.planted[entity]) | self.protected[entity]


@dataclass
class EntityChanges:
    """The ground truth of one change round for one entity, as sets of key texts.

    * ``inserted``: new keys.
    * ``updated``: existing rows whose *mapped* columns changed, including the silent
      updates, the moved references and the fixed rows (each also listed in its own set).
    * ``silent``: updated without touching ``updated_at``.
    * ``moved``: a reference column now points at another parent.
    * ``deleted``: keys gone from the legacy database (planted or previously failing rows
      may be among them when a parent's delete took them along).
    * ``unmapped_only``: only a column the mapping does not read changed (``offices.notes``);
      not a modification.
    * ``fixed``: a row that failed on purpose was corrected, so it migrates next run.
    """

    inserted: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    moved: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    unmapped_only: set[str] = field(default_factory=set)
    fixed: set[str] = field(default_factory=set)


@dataclass
class ChangeLog:
    """What one ``apply_changes`` round did, per entity (``log['doctor'].deleted``)."""

    round: int
    clock: dt.datetime
    entities: dict[str, EntityChanges] = field(
        default_factory=lambda: {entity: EntityChanges() for entity in ENTITIES}
    )

    def __getitem__(self, entity: str) -> EntityChanges:
        return self.entities[entity]
