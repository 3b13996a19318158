"""The legacy clinic: a small, messy legacy database, its changes and its expected migration.

Used by the integration tests (MariaDB source → PostgreSQL destination) and by the demo
(SQLite → SQLite); framework-free, SQLAlchemy Core only. A typical use::

    data = generate_clinic(seed=7)              # offices, doctors, patients, appointments
    create_legacy_schema(source); load_legacy(source, data)
    create_destination_schema(target)
    ... import MAPPING_FILE, run a baseline ...
    assert destination == expected_destination(data)
    before = data.snapshot()
    log = apply_changes(source, data, seed=7)   # inserts, updates, silent updates, deletes…
    ... analyze: counts == expected_analysis(before, log); run again ...

The pieces live in sibling modules: ``clinic_model`` (ClinicData, ChangeLog), ``clinic_schema``
(DDL, loading and reading the legacy tables), ``clinic_generate``, ``clinic_changes`` and
``clinic_expected`` (the independent computation of what the destination must hold).
"""

from __future__ import annotations

import pathlib

from migrationsapp.demo.clinic_changes import apply_changes
from migrationsapp.demo.clinic_expected import (
    Expectation,
    evaluate,
    expected_analysis,
    expected_destination,
    expected_failures,
    failure_reasons,
)
from migrationsapp.demo.clinic_generate import generate_clinic
from migrationsapp.demo.clinic_model import (
    DESTINATION_TABLES,
    ENTITIES,
    LEGACY_COLUMNS,
    LEGACY_TABLES,
    SOURCE_KEYS,
    ChangeLog,
    ClinicData,
    EntityChanges,
    Row,
    row_key,
)
from migrationsapp.demo.clinic_schema import (
    create_destination_schema,
    create_legacy_schema,
    drop_destination_schema,
    drop_legacy_schema,
    enable_sqlite_foreign_keys,
    legacy_transaction,
    load_legacy,
    read_legacy,
)

# The mapping of the clinic (docs/mapping.md), next to the project's other examples. Its
# connection URLs come from DIFFMIG_LEGACY_URL and DIFFMIG_TARGET_URL.
MAPPING_FILE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml"

__all__ = [
    "DESTINATION_TABLES",
    "ENTITIES",
    "LEGACY_COLUMNS",
    "LEGACY_TABLES",
    "MAPPING_FILE",
    "SOURCE_KEYS",
    "ChangeLog",
    "ClinicData",
    "EntityChanges",
    "Expectation",
    "Row",
    "apply_changes",
    "create_destination_schema",
    "create_legacy_schema",
    "drop_destination_schema",
    "drop_legacy_schema",
    "enable_sqlite_foreign_keys",
    "evaluate",
    "expected_analysis",
    "expected_destination",
    "expected_failures",
    "failure_reasons",
    "generate_clinic",
    "legacy_transaction",
    "load_legacy",
    "read_legacy",
    "row_key",
]
