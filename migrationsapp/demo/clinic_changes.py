"""One round of changes to the legacy clinic, applied to the database and to ``ClinicData``.

``apply_changes(engine, data, seed)`` makes the changes a live legacy system makes between two
migration runs, and returns the ground truth as a ``ChangeLog``:

* inserts of new keys in every entity (a new office with a new doctor, patient and
  appointment among them, so a run must write parents before children);
* updates that bump ``updated_at``, and *silent* updates that change a mapped column but
  leave ``updated_at`` alone (invisible to timestamp detection);
* a reference moved to another parent (an appointment and a patient change doctor);
* hard deletes of a whole office with its doctors, their patients and every appointment of
  those patients or doctors, plus a patient with its appointments and a few appointments,
  so the legacy data stays consistent (no row is left pointing at a deleted one);
* a change to ``offices.notes`` only, a column the mapping does not read;
* the fix of one row planted to fail, so it migrates on the next run.

Planted rows (and the first holder of the duplicated email) are never otherwise touched.
The round number and the clock advance with each call; the same seed and the same starting
data give the same changes.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from decimal import Decimal

import sqlalchemy as sa

from migrationsapp.demo.clinic_generate import (
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    ascii_slug,
    make_appointment,
    make_doctor,
    make_office,
    make_patient,
    messy,
    us_phone,
)
from migrationsapp.demo.clinic_model import ENTITIES, ChangeLog, ClinicData, Row, row_key
from migrationsapp.demo.clinic_schema import (
    delete_rows,
    insert_rows,
    legacy_transaction,
    update_rows,
)
from migrationsapp.engine.ids import encode_key

CHANGES_START = dt.datetime(2024, 7, 1, 8, 0, 0)
UPDATE_SHARE = 0.05
SILENT_SHARE = 0.01
INSERT_SHARE = 0.05
APPOINTMENT_DELETE_SHARE = 0.02
TREE_DELETE_SHARE = 0.3
# The parent a row needs to migrate: entity → (parent entity, reference column).
HEALTHY_PARENTS = {"doctor": ("office", "office_id"), "patient": ("doctor", "doctor_id")}

# What a fix sets on each planted row that a round may repair.
FIXES: dict[str, Row] = {
    "office": {"phone": "(617) 555-0142"},
    "doctor": {"email": "bob.builder@clinic.example"},
    "patient": {"name": "restored name 🙂"},
}


def ref_key(value: object) -> str | None:
    """The key text a single-column reference points at (None for a NULL reference)."""
    return None if value is None else encode_key([value])


def _share(count: int, share: float, minimum: int = 1) -> int:
    return max(minimum, round(count * share))


class _Round:
    """Plans one round against ``data``, then writes it to the database and to ``data``."""

    def __init__(self, data: ClinicData, seed: int) -> None:
        data.rounds += 1
        self.data = data
        self.rng = random.Random(f"clinic-changes:{seed}:{data.rounds}")
        self.clock = CHANGES_START + dt.timedelta(days=data.rounds - 1)
        self.log = ChangeLog(round=data.rounds, clock=self.clock)
        self.deleted: dict[str, set[str]] = {entity: set() for entity in ENTITIES}
        self.changes: dict[str, dict[str, Row]] = {entity: {} for entity in ENTITIES}
        self.inserts: dict[str, list[Row]] = {entity: [] for entity in ENTITIES}
        self._children: dict[tuple[str, str], dict[str, set[str]]] | None = None

    # ------------------------------------------------------------------ helpers

    def stamp(self) -> dt.datetime:
        return self.clock + dt.timedelta(seconds=self.rng.randrange(3600))

    def rows(self, entity: str) -> dict[str, Row]:
        return self.data.rows[entity]

    def take_id(self, entity: str) -> int:
        """The next free id of ``entity``, which no later insert of the round reuses."""
        self.data.next_id[entity] += 1
        return self.data.next_id[entity] - 1

    def free(self, entity: str) -> list[str]:
        """Keys nothing in this round has touched yet and that may be changed."""
        blocked = self.data.untouchable(entity) | self.deleted[entity] | set(self.changes[entity])
        return [key for key in self.rows(entity) if key not in blocked]

    def change(self, entity: str, key: str, values: Row, *, bump: bool = True) -> None:
        """Record an update of mapped columns (and ``updated_at`` unless it is silent)."""
        values = dict(values)
        if bump:
            values["updated_at"] = self.stamp()
        self.changes[entity].setdefault(key, {}).update(values)
        log = self.log[entity]
        log.updated.add(key)
        if not bump:
            log.silent.add(key)

    def healthy(self, entity: str) -> list[str]:
        """Keys that migrate: not planted, not deleted, and with no parent or one that migrates
        (a doctor's office, a patient's doctor)."""
        blocked = self.data.untouchable(entity) | self.deleted[entity]
        parent, column = HEALTHY_PARENTS.get(entity, ("", ""))
        parents = set(self.healthy(parent)) if parent else set()
        return [
            key
            for key, row in self.rows(entity).items()
            if key not in blocked
            and (not parent or row[column] is None or ref_key(row[column]) in parents)
        ]

    # ------------------------------------------------------------------ the plan

    def fix_one(self) -> None:
        if not self.data.unfixed:
            return
        entity, key = self.data.unfixed.pop(0)
        self.change(entity, key, FIXES[entity])
        self.log[entity].fixed.add(key)

    def children(self) -> dict[tuple[str, str], dict[str, set[str]]]:
        """Who references whom, built once: (child entity, column) → parent key → child keys."""
        if self._children is None:
            links = (
                ("doctor", "office_id"),
                ("patient", "doctor_id"),
                ("appointment", "patient_code"),
                ("appointment", "doctor_id"),
            )
            self._children = {}
            for entity, column in links:
                index: dict[str, set[str]] = {}
                for key, row in self.rows(entity).items():
                    parent = ref_key(row[column])
                    if parent is not None:
                        index.setdefault(parent, set()).add(key)
                self._children[entity, column] = index
        return self._children

    def cascade(
        self,
        offices: Iterable[str] = (),
        doctors: Iterable[str] = (),
        patients: Iterable[str] = (),
    ) -> dict[str, set[str]]:
        """These rows and every row below them: doctors, patients, appointments."""
        children = self.children()

        def below(entity: str, column: str, parents: set[str]) -> set[str]:
            index = children[entity, column]
            return {child for parent in parents for child in index.get(parent, ())}

        office_keys = set(offices)
        doctor_keys = set(doctors) | below("doctor", "office_id", office_keys)
        patient_keys = set(patients) | below("patient", "doctor_id", doctor_keys)
        appointments = below("appointment", "patient_code", patient_keys) | below(
            "appointment", "doctor_id", doctor_keys
        )
        return {
            "office": office_keys,
            "doctor": doctor_keys,
            "patient": patient_keys,
            "appointment": appointments,
        }

    def delete(self, tree: dict[str, set[str]]) -> None:
        for entity, keys in tree.items():
            self.deleted[entity] |= keys

    def deletable(self, tree: dict[str, set[str]]) -> bool:
        """A tree may go if it takes no planted or protected row along and stays small.

        Small: at most ``TREE_DELETE_SHARE`` of any entity's rows, so that with the other
        deletes a round stays well below the mapping's ``max_delete_share`` of 0.5.
        """
        if any(tree[e] & self.data.untouchable(e) for e in ("office", "doctor", "patient")):
            return False
        return all(
            len(tree[e]) <= TREE_DELETE_SHARE * len(self.rows(e)) for e in ENTITIES if e != "office"
        )

    def plan_deletes(self) -> None:
        # An office with its doctors and everything below them, or failing that one doctor
        # with everything below it; the smallest tree that may go. Two offices always stay.
        offices = self.free("office")
        trees = [self.cascade(offices=[office]) for office in offices] if len(offices) > 2 else []
        trees = [t for t in trees if t["doctor"] and self.deletable(t)]
        if not trees:
            doctor_trees = (self.cascade(doctors=[doctor]) for doctor in self.free("doctor"))
            trees = [t for t in doctor_trees if self.deletable(t)]
        if trees:
            sizes = [sum(len(keys) for keys in tree.values()) for tree in trees]
            smallest = [tree for tree, size in zip(trees, sizes, strict=True) if size == min(sizes)]
            self.delete(self.rng.choice(smallest))
        patients = self.free("patient")
        for patient in self.rng.sample(patients, min(len(patients), _share(len(patients), 0.01))):
            self.delete(self.cascade(patients=[patient]))
        appointments = self.free("appointment")
        count = _share(len(appointments), APPOINTMENT_DELETE_SHARE)
        self.deleted["appointment"] |= set(
            self.rng.sample(appointments, min(count, len(appointments)))
        )

    def plan_unmapped_only(self) -> None:
        offices = self.free("office")
        if offices:
            key = self.rng.choice(offices)
            note = f"Notes revised in round {self.data.rounds} ✏️"
            self.changes["office"][key] = {"notes": note}
            self.log["office"].unmapped_only.add(key)

    def new_values(self, entity: str, row: Row) -> Row:
        """New values for one or two mapped columns, always different from the current ones."""
        rng, rounds = self.rng, self.data.rounds
        if entity == "office":
            choice = rng.randrange(3)
            if choice == 0:
                return {"name": f"{row['name'].strip()} Annex {rounds}"}
            if choice == 1:
                opened = row["opened"]
                while opened == row["opened"]:
                    opened = dt.date(2001, 1, 1) + dt.timedelta(days=rng.randrange(8000))
                return {"opened": opened}
            phone = row["phone"]
            while phone == row["phone"]:
                phone = us_phone(rng)
            return {"phone": phone}
        if entity == "doctor":
            choice = rng.randrange(3)
            if choice == 0:
                salary = row["salary"] if row["salary"] is not None else Decimal("80000.00")
                return {"salary": salary + 1000 + rounds}
            if choice == 1:
                return {"active_flag": "N" if row["active_flag"] == "Y" else "Y"}
            last = rng.choice(LAST_NAMES)
            email = f"{ascii_slug(last)}.{row['id']}.r{rounds}@{rng.choice(EMAIL_DOMAINS)}"
            return {"last_name": messy(rng, last), "email": email}
        if entity == "patient":
            choice = rng.randrange(3)
            if choice == 0:
                return {"vip": 1 - row["vip"]}
            if choice == 1:
                return {"name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)} r{rounds}"}
            phone = row["phone"]
            while phone == row["phone"]:
                phone = us_phone(rng)
            return {"phone": phone}
        if rng.randrange(2) == 0:
            return {"note": f"rescheduled in round {rounds}"}
        return {"starts": row["starts"] + dt.timedelta(days=1 + rng.randrange(7))}

    def plan_updates(self) -> None:
        for entity in ENTITIES:
            keys = self.free(entity)
            regular, silent = _share(len(keys), UPDATE_SHARE), _share(len(keys), SILENT_SHARE)
            chosen = self.rng.sample(keys, min(len(keys), regular + silent))
            for position, key in enumerate(chosen):
                values = self.new_values(entity, self.rows(entity)[key])
                self.change(entity, key, values, bump=position < regular)

    def plan_moves(self) -> None:
        doctors = self.healthy("doctor")
        untouchable_patients = self.data.untouchable("patient")
        movable = {
            "patient": self.free("patient"),
            "appointment": [
                k
                for k in self.free("appointment")
                if ref_key(self.rows("appointment")[k]["patient_code"]) not in untouchable_patients
            ],
        }
        for entity, keys in movable.items():
            self.rng.shuffle(keys)
            for key in keys:
                current = ref_key(self.rows(entity)[key]["doctor_id"])
                others = [d for d in doctors if d != current]
                if others:
                    new = self.rows("doctor")[self.rng.choice(others)]["id"]
                    self.change(entity, key, {"doctor_id": new})
                    self.log[entity].moved.add(key)
                    break

    def plan_inserts(self) -> None:
        rng, rounds = self.rng, self.data.rounds
        counts = {
            e: _share(len(self.rows(e)), INSERT_SHARE, 1 if e == "office" else 2) for e in ENTITIES
        }
        offices = [
            make_office(rng, self.take_id("office"), self.stamp()) for _ in range(counts["office"])
        ]
        self.inserts["office"] = offices
        office_ids = [o["id"] for o in offices] + [
            self.rows("office")[k]["id"] for k in self.healthy("office")
        ]

        doctors = []
        for position in range(counts["doctor"]):
            office_id = office_ids[0] if position == 0 else rng.choice(office_ids)
            doctors.append(make_doctor(rng, self.take_id("doctor"), office_id, self.stamp()))
        self.inserts["doctor"] = doctors
        doctor_ids = [d["id"] for d in doctors] + [
            self.rows("doctor")[k]["id"] for k in self.healthy("doctor")
        ]

        patients = []
        for position in range(counts["patient"]):
            code = f"R{rounds}/ {position}, new" if position == 0 else f"R{rounds}-{position:04d}"
            doctor_id = doctor_ids[0] if position == 0 else rng.choice([*doctor_ids, None])
            patients.append(make_patient(rng, code, doctor_id, self.stamp()))
        self.inserts["patient"] = patients
        owners = patients + [self.rows("patient")[k] for k in self.healthy("patient")]

        appointments = []
        for position in range(counts["appointment"]):
            owner = owners[0] if position == 0 else rng.choice(owners)
            seq = 1 if position == 0 else 1000 * rounds + position
            appointments.append(
                make_appointment(rng, owner["code"], seq, owner["doctor_id"], self.stamp())
            )
        self.inserts["appointment"] = appointments
        for entity in ENTITIES:
            self.log[entity].inserted = {row_key(entity, row) for row in self.inserts[entity]}

    # ------------------------------------------------------------------ writing

    def write(self, engine: sa.Engine) -> None:
        """Deletes (children first), updates, inserts (parents first), in one transaction."""
        with legacy_transaction(engine) as conn:
            for entity in reversed(ENTITIES):
                delete_rows(
                    conn, entity, (self.rows(entity)[k] for k in sorted(self.deleted[entity]))
                )
            for entity in ENTITIES:
                pairs = [(self.rows(entity)[k], v) for k, v in self.changes[entity].items()]
                update_rows(conn, entity, pairs)
            for entity in ENTITIES:
                insert_rows(conn, entity, self.inserts[entity])

    def remember(self) -> None:
        """Apply the same changes to the in-memory rows."""
        for entity in ENTITIES:
            rows = self.rows(entity)
            for key in self.deleted[entity]:
                del rows[key]
            for key, values in self.changes[entity].items():
                rows[key].update(values)
            for row in self.inserts[entity]:
                rows[row_key(entity, row)] = row
            self.log[entity].deleted = set(self.deleted[entity])


def apply_changes(engine: sa.Engine, data: ClinicData, seed: int) -> ChangeLog:
    """Apply one round of changes to the legacy database behind ``engine`` and to ``data``.

    ``data`` must describe what the database holds (as after ``load_legacy`` and earlier
    rounds). Returns what changed, per entity; see ``EntityChanges`` for each set. When the
    write fails, nothing is committed and ``data`` is left as it was.
    """
    # Planning advances these counters; a failed write must leave ``data`` as it was.
    saved = (data.rounds, list(data.unfixed), dict(data.next_id))
    try:
        plan = _Round(data, seed)
        plan.fix_one()
        plan.plan_deletes()
        plan.plan_unmapped_only()
        plan.plan_moves()
        plan.plan_updates()
        plan.plan_inserts()
        plan.write(engine)
    except BaseException:
        data.rounds, data.unfixed, data.next_id = saved
        raise
    plan.remember()
    return plan.log
