"""The bad-data corpus: a MariaDB legacy database with one row per dirty case.

Real legacy databases hold what a strict server refuses today: the tables here are created
the way such databases are (a BLOB column for bytes that are not UTF-8, ``sql_mode`` with
``ALLOW_INVALID_DATES`` and without ``NO_ZERO_DATE`` for zero and impossible dates), so the
legacy side really holds every case. Each case says what the run must give: the migrated
value, or the quarantine entry (field and exact reason).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

# A text of 1,000,000 characters mixing 1-, 2-, 3- and 4-byte UTF-8 (about 2.5 MB).
HUGE = ("a" + "é" + "€" + "😀") * 250_000
NUL_TEXT = "before\x00after"


@dataclass(frozen=True)
class Case:
    """One row of ``dirty_values``: its columns, and the outcome the run must give."""

    id: int
    name: str
    values: dict[str, Any]
    # Migrated: the destination columns that must hold these values.
    migrated: dict[str, Any] = field(default_factory=dict)
    # Quarantined: (field, reason).
    failure: tuple[str, str] | None = None


# Every column of dirty_values has a harmless default, so that a case sets only its own.
CLEAN = {
    "note": "plain",
    "raw": b"plain bytes",
    "born": "1980-05-17",
    "seen": "2020-01-31",
    "big": 7,
    "amount": Decimal("12.50"),
    "code": "ab",
}

CASES: list[Case] = [
    Case(1, "clean row", {}, migrated={"note": "plain", "born": dt.date(1980, 5, 17)}),
    Case(
        2,
        "NUL byte in a text value",
        {"note": NUL_TEXT},
        failure=(
            "note",
            "text contains a NUL byte (0x00), which PostgreSQL cannot store: "
            "'before\\x00after'; clean the source value or remove the byte in a transform",
        ),
    ),
    Case(3, "4-byte characters", {"note": "emoji 😀 and 𝄞"}, migrated={"note": "emoji 😀 and 𝄞"}),
    Case(4, "huge text (1,000,000 characters)", {"note": HUGE}, migrated={"note": HUGE}),
    Case(
        5,
        "bytes that are not UTF-8",
        {"raw": b"\xff\xfe caf\xe9"},
        failure=("raw_text", "cannot convert b'\\xff\\xfe caf\\xe9' to text"),
    ),
    Case(6, "valid UTF-8 bytes", {"raw": "café".encode()}, migrated={"raw_text": "café"}),
    Case(
        7,
        "zero date into a date column",
        {"born": "0000-00-00"},
        failure=("born", "cannot convert '0000-00-00' to date"),
    ),
    Case(
        8,
        "impossible date into a date column",
        {"born": "2023-02-30"},
        failure=("born", "cannot convert '2023-02-30' to date"),
    ),
    Case(
        9,
        "zero and impossible dates through legacy_date",
        {"seen": "0000-00-00", "born": None},
        migrated={"seen": None, "born": None},
    ),
    Case(
        10, "impossible date through legacy_date", {"seen": "2021-04-31"}, migrated={"seen": None}
    ),
    Case(
        11,
        "integer out of range for the destination (integer)",
        {"big": 2**40},
        failure=(
            "big",
            'destination refused the row: value "1099511627776" is out of range for type '
            'integer CONTEXT:  COPY diffmig_stage, line 1, column big: "1099511627776"',
        ),
    ),
    Case(
        12,
        "decimal out of range for the destination (numeric(5,2))",
        {"amount": Decimal("123456.78")},
        failure=(
            "amount",
            "destination refused the row: numeric field overflow DETAIL:  A field with "
            "precision 5, scale 2 must round to an absolute value less than 10^3.",
        ),
    ),
    Case(
        13,
        "text longer than the destination column (varchar(5))",
        {"code": "too long"},
        failure=(
            "code",
            "destination refused the row: value too long for type character varying(5) "
            'CONTEXT:  COPY diffmig_stage, line 1, column code: "too long"',
        ),
    ),
]


def create_legacy(engine: sa.Engine) -> None:
    """The legacy tables, holding every case (with the sql_mode a legacy server ran)."""
    with engine.begin() as conn:
        # No NO_ZERO_DATE / strict mode, and ALLOW_INVALID_DATES: what old servers allowed.
        conn.exec_driver_sql("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
        conn.exec_driver_sql(
            "CREATE TABLE dirty_values (id INT PRIMARY KEY, note LONGTEXT, raw BLOB, "
            "born DATE NULL, seen DATE NULL, big BIGINT, amount DECIMAL(20, 2), "
            "code VARCHAR(40)) CHARACTER SET utf8mb4"
        )
        for case in CASES:
            row = {**CLEAN, **case.values, "id": case.id}
            conn.execute(
                sa.text(
                    "INSERT INTO dirty_values (id, note, raw, born, seen, big, amount, code) "
                    "VALUES (:id, :note, :raw, :born, :seen, :big, :amount, :code)"
                ),
                row,
            )
        conn.exec_driver_sql("CREATE TABLE parents (id INT PRIMARY KEY, name VARCHAR(20))")
        conn.exec_driver_sql(
            "CREATE TABLE children (id INT PRIMARY KEY, parent_id INT, name VARCHAR(20))"
        )
        conn.exec_driver_sql("INSERT INTO parents VALUES (1, 'kept'), (2, 'deleted later')")
        # Child 12's parent 9 was deleted from the legacy database long ago (no foreign key).
        conn.exec_driver_sql(
            "INSERT INTO children VALUES (10, 1, 'of kept'), (11, 2, 'of deleted later'), "
            "(12, 9, 'orphan')"
        )
        # Keyed by a nullable column (a UNIQUE index admits several NULLs).
        conn.exec_driver_sql("CREATE TABLE coded (code VARCHAR(10) NULL UNIQUE, name VARCHAR(20))")
        conn.exec_driver_sql(
            "INSERT INTO coded VALUES ('A', 'first'), (NULL, 'no code'), (NULL, 'no code either'), "
            "('None', 'the text None')"
        )
        # Keyed by a column that is not unique at all.
        conn.exec_driver_sql("CREATE TABLE dupes (code VARCHAR(10), name VARCHAR(20))")
        conn.exec_driver_sql(
            "INSERT INTO dupes VALUES ('X1', 'one'), ('X2', 'two'), ('X2', 'two again')"
        )


def create_destination(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE dirty_value (id uuid PRIMARY KEY, legacy_id integer, note text, "
            "raw_text text, born date, seen date, big integer, amount numeric(5, 2), "
            "code varchar(5))"
        )
        conn.exec_driver_sql("CREATE TABLE parent (id uuid PRIMARY KEY, name text)")
        conn.exec_driver_sql(
            "CREATE TABLE child (id uuid PRIMARY KEY, parent_id uuid REFERENCES parent (id), "
            "name text)"
        )
        conn.exec_driver_sql("CREATE TABLE coded (id uuid PRIMARY KEY, code text, name text)")
        conn.exec_driver_sql("CREATE TABLE dupe (id uuid PRIMARY KEY, code text, name text)")


MAPPING = """
version: 1
connections:
  legacy: {url: "${DIFFMIG_LEGACY_URL}"}
  target: {url: "${DIFFMIG_TARGET_URL}"}
source: legacy
destination: target
entities:
  - name: dirty_value
    source_table: dirty_values
    source_key: [id]
    destination_table: dirty_value
    destination_key: id
    fields:
      - {source: id, destination: legacy_id}
      - {source: note, destination: note}
      - {source: raw, destination: raw_text}
      - {source: born, destination: born}
      - {source: seen, destination: seen, transform: legacy_date}
      - {source: big, destination: big}
      - {source: amount, destination: amount}
      - {source: code, destination: code}
  - name: parent
    source_table: parents
    source_key: [id]
    destination_table: parent
    destination_key: id
    max_delete_share: 0.5
    fields:
      - {source: name, destination: name}
  - name: child
    source_table: children
    source_key: [id]
    destination_table: child
    destination_key: id
    depends_on: [parent]
    fields:
      - {source: parent_id, destination: parent_id, reference: parent}
      - {source: name, destination: name}
  - name: coded
    source_table: coded
    source_key: [code]
    destination_table: coded
    destination_key: id
    fields:
      - {source: code, destination: code}
      - {source: name, destination: name}
  - name: dupe
    source_table: dupes
    source_key: [code]
    destination_table: dupe
    destination_key: id
    fields:
      - {source: code, destination: code}
      - {source: name, destination: name}
"""
