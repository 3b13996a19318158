"""A legacy clinic and its destination as SQLite files, with the clinic mapping imported.

What ``services.demo`` prepares, for tests of the pages: the web and browser tests launch
runs of it from the dashboard. Files live under a test's own ``DIFFMIG_SQLITE_ROOT``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from migrationsapp.demo.clinic import (
    ENTITIES,
    LEGACY_TABLES,
    MAPPING_FILE,
    ClinicData,
    create_destination_schema,
    create_legacy_schema,
    generate_clinic,
    load_legacy,
)
from migrationsapp.services.mappings import import_mapping_text


@dataclass
class SqliteClinic:
    data: ClinicData
    legacy_url: str
    target_url: str

    def source_counts(self) -> dict[str, int]:
        return {entity: len(self.data.rows[entity]) for entity in ENTITIES}

    def delete_appointments(self, count: int) -> int:
        """Delete ``count`` legacy appointments (they have no children); returns how many."""
        engine = sa.create_engine(self.legacy_url)
        try:
            with engine.begin() as conn:
                table = LEGACY_TABLES["appointment"]
                keys = conn.execute(
                    sa.text(f"SELECT patient_code, seq FROM {table} ORDER BY patient_code, seq")
                ).fetchall()[:count]
                for code, seq in keys:
                    conn.execute(
                        sa.text(f"DELETE FROM {table} WHERE patient_code = :c AND seq = :s"),
                        {"c": code, "s": seq},
                    )
            return len(keys)
        finally:
            engine.dispose()


def build_sqlite_clinic(root: Path, *, seed: int = 2026, scale: int = 1) -> SqliteClinic:
    """Legacy + empty destination under ``root``; sets DIFFMIG_LEGACY_URL / _TARGET_URL.

    The caller points ``settings.DIFFMIG_SQLITE_ROOT`` at ``root`` and restores the two
    environment variables (``monkeypatch.setenv`` before calling does both).
    """
    folder = root / "clinic"
    folder.mkdir(parents=True, exist_ok=True)
    legacy_url = f"sqlite:///{folder / 'legacy.sqlite3'}"
    target_url = f"sqlite:///{folder / 'target.sqlite3'}"
    os.environ["DIFFMIG_LEGACY_URL"], os.environ["DIFFMIG_TARGET_URL"] = legacy_url, target_url
    data = generate_clinic(seed=seed, scale=scale)
    legacy, target = sa.create_engine(legacy_url), sa.create_engine(target_url)
    try:
        create_legacy_schema(legacy)
        load_legacy(legacy, data)
        create_destination_schema(target)
    finally:
        legacy.dispose()
        target.dispose()
    import_mapping_text(text=MAPPING_FILE.read_text(encoding="utf-8"), user="tests")
    return SqliteClinic(data=data, legacy_url=legacy_url, target_url=target_url)
