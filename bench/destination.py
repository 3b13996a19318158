"""The destination schema the new system owns (PostgreSQL): UUID keys, real types, foreign keys.

Every foreign key has its index (``--no-fk-indexes`` leaves them out, to see what a
destination without them costs: each deleted parent then scans its children's table).
"""

from __future__ import annotations

TABLES_DDL = (
    """CREATE TABLE office (
        id uuid PRIMARY KEY,
        legacy_id integer NOT NULL,
        name text NOT NULL,
        city text,
        phone text,
        opened_on date
    )""",
    """CREATE TABLE doctor (
        id uuid PRIMARY KEY,
        legacy_id integer NOT NULL,
        office_id uuid NOT NULL REFERENCES office (id),
        full_name text NOT NULL,
        email text,
        phone text,
        is_active boolean NOT NULL,
        specialty text,
        hired_on date
    )""",
    """CREATE TABLE patient (
        id uuid PRIMARY KEY,
        legacy_id integer NOT NULL,
        doctor_id uuid REFERENCES doctor (id),
        full_name text NOT NULL,
        birth_date date,
        email text,
        city text,
        vip boolean NOT NULL,
        balance numeric(10, 2),
        notes text
    )""",
    """CREATE TABLE appointment (
        id uuid PRIMARY KEY,
        patient_id uuid NOT NULL REFERENCES patient (id),
        seq integer NOT NULL,
        doctor_id uuid REFERENCES doctor (id),
        starts_at timestamptz NOT NULL,
        status text NOT NULL,
        note text
    )""",
)

FK_INDEXES = (
    "CREATE INDEX doctor_office_idx ON doctor (office_id)",
    "CREATE INDEX patient_doctor_idx ON patient (doctor_id)",
    "CREATE INDEX appointment_patient_idx ON appointment (patient_id)",
    "CREATE INDEX appointment_doctor_idx ON appointment (doctor_id)",
)


def destination_ddl(*, fk_indexes: bool = True) -> list[str]:
    """The statements that create the destination tables (in dependency order)."""
    return [*TABLES_DDL, *(FK_INDEXES if fk_indexes else ())]
