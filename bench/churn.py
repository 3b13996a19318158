"""The churn step: changes to the legacy clinic, with the ground truth of what changed.

Per table, rows ranked by a hash of the seed and their key are picked for
0.5 % updates (which also move ``updated_at``), 0.05 % silent updates (a mapped column
changes, ``updated_at`` does not: a timestamp cursor cannot see them, a content hash must),
0.2 % hard deletes, and 0.3 % inserts; at least one of each, whatever the scale. Children
of deleted parents are deleted too (offices → doctors → patients → appointments), and a
row both picked for an update and deleted by a cascade counts as deleted.

The ground truth is per entity: the legacy keys (as the CLI writes them, ``42`` or ``7/2``)
that must be ``new``, ``modified`` and ``deleted`` in the next analysis.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bench.clinic import TABLE_BY_ENTITY, TABLES, Table
from bench.databases import BenchDatabases

SHARES = {"update": 0.005, "silent": 0.0005, "insert": 0.003, "delete": 0.002}
CHURN_TIME = "2024-07-01 12:00:00"  # later than every generated updated_at

# (normal update, silent update): SET clauses (on the table aliased t) that change a
# mapped column.
UPDATES = {
    "offices": ("t.name = CONCAT(t.name, ' annex')", "t.city = IF(t.city IS NULL, 'Köln', NULL)"),
    "doctors": (
        "t.last_name = CONCAT(t.last_name, ' jr')",
        "t.specialty = IF(t.specialty IS NULL, 'Radiología', NULL)",
    ),
    "patients": (
        "t.notes = CONCAT(COALESCE(t.notes, ''), ' ✎ moved 🏠')",
        "t.balance = COALESCE(t.balance, 0) + 1",
    ),
    "appointments": (
        "t.note = CONCAT(COALESCE(t.note, ''), ' (moved)')",
        "t.status = IF(t.status = 'D', 'C', 'D')",
    ),
}


@dataclass
class Truth:
    """What the next analysis must find, per entity and kind."""

    changes: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    silent: dict[str, set[str]] = field(default_factory=dict)

    def count(self, kind: str | None = None) -> int:
        return sum(
            len(keys)
            for kinds in self.changes.values()
            for k, keys in kinds.items()
            if kind in (None, k)
        )

    def as_pairs(self) -> set[tuple[str, str, str]]:
        return {
            (entity, kind, key)
            for entity, kinds in self.changes.items()
            for kind, keys in kinds.items()
            for key in keys
        }


def key_text(values: tuple) -> str:
    """The legacy key as people and the change-set table write it (integers: no escaping)."""
    return "/".join(str(v) for v in values)


def _count(share: float, rows: int) -> int:
    return max(1, round(rows * share))


def _ranked(cur, seed: int, table: Table, limit: int) -> list[tuple]:
    keys = ", ".join(f"`{k}`" for k in table.key)
    cur.execute(
        f"SELECT {keys} FROM `{table.name}` "
        f"ORDER BY CRC32(CONCAT('{seed}:churn:{table.name}:', CONCAT_WS('/', {keys}))), {keys} "
        f"LIMIT {limit}"
    )
    return [tuple(row) for row in cur.fetchall()]


def _temp_keys(cur, name: str, table: Table, keys: set[tuple]) -> None:
    columns = ", ".join(f"`{k}` INT NOT NULL" for k in table.key)
    pk = ", ".join(f"`{k}`" for k in table.key)
    cur.execute(f"CREATE TEMPORARY TABLE `{name}` ({columns}, PRIMARY KEY ({pk}))")
    if keys:
        marks = ", ".join(["%s"] * len(table.key))
        cur.executemany(f"INSERT IGNORE INTO `{name}` VALUES ({marks})", sorted(keys))


def _children(cur, sql: str) -> set[tuple]:
    cur.execute(sql)
    return {tuple(row) for row in cur.fetchall()}


def apply_churn(dbs: BenchDatabases, *, seed: int) -> Truth:
    """Change the legacy clinic; return the ground truth of the change set."""
    conn = dbs.mysql_connect()
    truth = Truth()
    picked: dict[str, dict[str, list[tuple]]] = {}
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        counts = {}
        for table in TABLES:
            cur.execute(f"SELECT COUNT(*) FROM `{table.name}`")
            rows = int(cur.fetchone()[0])
            counts[table.name] = rows
            n = {kind: _count(share, rows) for kind, share in SHARES.items()}
            ranked = _ranked(cur, seed, table, n["delete"] + n["update"] + n["silent"])
            picked[table.name] = {
                "delete": ranked[: n["delete"]],
                "update": ranked[n["delete"] : n["delete"] + n["update"]],
                "silent": ranked[n["delete"] + n["update"] :],
                "insert_count": n["insert"],
            }

        deleted = _cascade_deletes(cur, picked)
        for table in TABLES:
            gone = deleted[table.name]
            keys = ", ".join(f"`{k}`" for k in table.key)
            _temp_keys(cur, f"churn_del_{table.name}", table, gone)
            cur.execute(
                f"DELETE t FROM `{table.name}` t JOIN `churn_del_{table.name}` d USING ({keys})"
            )
        updated: dict[str, set[tuple]] = {}
        silent: dict[str, set[tuple]] = {}
        for table in TABLES:
            normal_set, silent_set = UPDATES[table.name]
            updated[table.name] = set(picked[table.name]["update"]) - deleted[table.name]
            silent[table.name] = set(picked[table.name]["silent"]) - deleted[table.name]
            for name, keys, clause in (
                ("upd", updated[table.name], f"{normal_set}, t.updated_at = '{CHURN_TIME}'"),
                ("sil", silent[table.name], silent_set),
            ):
                _temp_keys(cur, f"churn_{name}_{table.name}", table, keys)
                join_keys = ", ".join(f"`{k}`" for k in table.key)
                cur.execute(
                    f"UPDATE `{table.name}` t JOIN `churn_{name}_{table.name}` c "
                    f"USING ({join_keys}) SET {clause}"
                )
        inserted = _insert_rows(cur, seed, picked)
    conn.close()

    for table in TABLES:
        truth.changes[table.entity] = {
            "new": {key_text(k) for k in inserted[table.name]},
            "modified": {key_text(k) for k in updated[table.name] | silent[table.name]},
            "deleted": {key_text(k) for k in deleted[table.name]},
        }
        truth.silent[table.entity] = {key_text(k) for k in silent[table.name]}
    return truth


def _cascade_deletes(cur, picked: dict) -> dict[str, set[tuple]]:
    offices = set(picked["offices"]["delete"])
    _temp_keys(cur, "churn_gone_offices", TABLE_BY_ENTITY["office"], offices)
    doctors = set(picked["doctors"]["delete"]) | _children(
        cur, "SELECT id FROM doctors WHERE office_id IN (SELECT id FROM churn_gone_offices)"
    )
    _temp_keys(cur, "churn_gone_doctors", TABLE_BY_ENTITY["doctor"], doctors)
    patients = set(picked["patients"]["delete"]) | _children(
        cur, "SELECT id FROM patients WHERE doctor_id IN (SELECT id FROM churn_gone_doctors)"
    )
    _temp_keys(cur, "churn_gone_patients", TABLE_BY_ENTITY["patient"], patients)
    appointments = set(picked["appointments"]["delete"]) | _children(
        cur,
        "SELECT patient_id, seq FROM appointments "
        "WHERE patient_id IN (SELECT id FROM churn_gone_patients) "
        "OR doctor_id IN (SELECT id FROM churn_gone_doctors)",
    )
    return {
        "offices": offices,
        "doctors": doctors,
        "patients": patients,
        "appointments": appointments,
    }


def _insert_rows(cur, seed: int, picked: dict) -> dict[str, set[tuple]]:
    """New rows (new keys above the largest), pointing only at parents that survive."""
    rnd = random.Random(f"{seed}:churn:insert")
    inserted: dict[str, set[tuple]] = {}

    def surviving(table: str) -> list[int]:
        cur.execute(f"SELECT id FROM `{table}` ORDER BY id")
        return [row[0] for row in cur.fetchall()]

    def next_id(table: str) -> int:
        cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM `{table}`")
        return int(cur.fetchone()[0]) + 1

    start = next_id("offices")
    rows = [
        (
            start + i,
            f" new office {start + i} ",
            rnd.choice(["Malmö", None, "Nîmes"]),
            "(212) 555-2368",
            rnd.choice(["0000-00-00", None, "2024-06-01"]),
            CHURN_TIME,
        )
        for i in range(picked["offices"]["insert_count"])
    ]
    cur.executemany("INSERT INTO offices VALUES (%s, %s, %s, %s, %s, %s)", rows)
    inserted["offices"] = {(r[0],) for r in rows}

    offices = surviving("offices")
    start = next_id("doctors")
    rows = [
        (
            start + i,
            rnd.choice(offices),
            rnd.choice(["ana", " ÉMILE", "zoë 🌟"]),
            rnd.choice(["smith", "GARCÍA "]),
            f" New.Doctor{start + i}@Clinic.Example",
            rnd.choice(["415-555-2671", None]),
            rnd.choice(["Y", "n"]),
            rnd.choice(["Pédiatrie", None]),
            rnd.choice(["0000-00-00", "2024-05-02"]),
            CHURN_TIME,
        )
        for i in range(picked["doctors"]["insert_count"])
    ]
    cur.executemany("INSERT INTO doctors VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    inserted["doctors"] = {(r[0],) for r in rows}

    doctors = surviving("doctors")
    start = next_id("patients")
    rows = [
        (
            start + i,
            rnd.choice(doctors),
            rnd.choice(["new", " Émile 🌸"]),
            rnd.choice(["patient", "o'neil  "]),
            rnd.choice(["2001-02-03", "3/4/1999", "0000-00-00", "", None]),
            rnd.choice([f"new.patient{start + i}@clinic.example", None]),
            rnd.choice(["Århus", None]),
            rnd.choice(["Y", "0"]),
            rnd.choice([None, "12.50"]),
            rnd.choice(["first visit 🦷", None]),
            CHURN_TIME,
        )
        for i in range(picked["patients"]["insert_count"])
    ]
    cur.executemany(
        "INSERT INTO patients VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows
    )
    inserted["patients"] = {(r[0],) for r in rows}

    patients = surviving("patients")
    rows = [
        (
            rnd.choice(patients),
            1000 + i,
            rnd.choice(doctors),
            "2024-08-01 09:30:00",
            rnd.choice(["B", "D"]),
            rnd.choice(["new ✅", None]),
            CHURN_TIME,
        )
        for i in range(picked["appointments"]["insert_count"])
    ]
    cur.executemany("INSERT INTO appointments VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
    inserted["appointments"] = {(r[0], r[1]) for r in rows}
    return inserted
