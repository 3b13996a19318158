"""The demo: a messy legacy clinic migrated with a baseline, changed, migrated again, verified.

Runs on the embedded default with no services: the legacy clinic and the destination are
SQLite files under ``DIFFMIG_SQLITE_ROOT/demo/`` (``var/databases/demo/`` by default, apart
from the control database's file; the legacy one on MariaDB when ``DIFFMIG_LEGACY_URL`` is
set, the destination on PostgreSQL when ``DIFFMIG_TARGET_URL`` is). The demo owns the four
clinic entities: it rebuilds their tables and forgets what the control database knew of
their records, so that every demo starts from a fresh destination.

The mapping is imported with the demo's URLs written in (not ``${DIFFMIG_…}``), so the
connections table holds them and the web server, another process, finds them; and the demo
user is made (``services.demo_user``), so that ``make serve`` is the next step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
import yaml
from django.conf import settings
from django.db import transaction

from migrationsapp.demo.clinic import (
    ENTITIES,
    MAPPING_FILE,
    ChangeLog,
    EntityChanges,
    apply_changes,
    create_destination_schema,
    create_legacy_schema,
    drop_destination_schema,
    drop_legacy_schema,
    expected_analysis,
    generate_clinic,
    load_legacy,
)
from migrationsapp.models import QuarantinedRecord, RecordEvent, RecordMap
from migrationsapp.selectors.sessions import session_document
from migrationsapp.services.demo_user import DemoLogin, ensure_demo_user
from migrationsapp.services.mappings import import_mapping_text
from migrationsapp.services.runs import RunOptions, start_run
from migrationsapp.services.verify import verify_entities

DEMO_SEED = 2026


@dataclass
class DemoResult:
    legacy_url: str
    target_url: str
    baseline: dict
    changes: ChangeLog
    expected: dict[str, dict[str, int]]
    differential: dict
    verification: dict[str, dict[str, int]]
    matches: bool
    login: DemoLogin
    mismatches: list[str] = field(default_factory=list)
    # Per entity, how the changes made become the analysis's counts (a quarantined row
    # that changed is new, a deleted row that never migrated deletes nothing).
    explained: dict[str, str] = field(default_factory=dict)


def _engine(url: str) -> sa.Engine:
    url = url.replace("mysql://", "mysql+pymysql://", 1)
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    return sa.create_engine(url)


def _urls() -> tuple[str, str]:
    folder = Path(settings.DIFFMIG_SQLITE_ROOT) / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    legacy = os.environ.get("DIFFMIG_LEGACY_URL") or f"sqlite:///{folder / 'legacy.sqlite3'}"
    target = os.environ.get("DIFFMIG_TARGET_URL") or f"sqlite:///{folder / 'target.sqlite3'}"
    return legacy, target


def demo_mapping_text(legacy_url: str, target_url: str) -> str:
    """The clinic mapping with the demo's own URLs in its connections (see the docstring)."""
    document = yaml.safe_load(MAPPING_FILE.read_text(encoding="utf-8"))
    document["connections"][document["source"]]["url"] = legacy_url
    document["connections"][document["destination"]]["url"] = target_url
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


@transaction.atomic
def forget_clinic_records() -> None:
    """A fresh destination means the record map, history and quarantine start empty too."""
    for model in (RecordMap, RecordEvent, QuarantinedRecord):
        model.objects.filter(entity_type__in=ENTITIES).delete()


def run_demo(*, say: Callable[[str], None] = print) -> DemoResult:
    legacy_url, target_url = _urls()
    legacy, target = _engine(legacy_url), _engine(target_url)
    try:
        say(f"1. building the legacy clinic ({legacy.dialect.name}) and an empty destination")
        data = generate_clinic(seed=DEMO_SEED)
        drop_legacy_schema(legacy)
        create_legacy_schema(legacy)
        load_legacy(legacy, data)
        drop_destination_schema(target)
        create_destination_schema(target)
        forget_clinic_records()
        counts = ", ".join(f"{len(data.rows[e])} {e}s" for e in ENTITIES)
        say(f"   legacy rows: {counts}")

        say(f"2. importing the mapping {MAPPING_FILE.name}")
        imported = import_mapping_text(text=demo_mapping_text(legacy_url, target_url), user="demo")
        for entity, version in imported.created + imported.unchanged:
            say(f"   {entity}: version {version}")

        say("3. baseline run")
        baseline = _run(RunOptions(baseline=True))

        say("4. changing the legacy data: inserts, updates, silent updates, deletes, a move")
        before = data.snapshot()
        changes = apply_changes(legacy, data, seed=DEMO_SEED + 1)
        truth = expected_analysis(before, changes)
        expected = {e: {kind: len(keys) for kind, keys in truth[e].items()} for e in ENTITIES}
        explained = {e: explain_counts(changes[e], truth[e]) for e in ENTITIES}

        say("5. differential run: only what changed")
        differential = _run(RunOptions())
        mismatches = [
            f"{entity} {kind}: expected {count}, found {differential['entities'][entity][kind]}"
            for entity in ENTITIES
            for kind, count in expected[entity].items()
            if differential["entities"][entity][kind] != count
        ]

        say("6. verify: source and destination compared record by record")
        report = verify_entities()
        verification = {result.entity: result.counts() for result in report.entities}
        mismatches += [
            f"verify {entity}: {counts['missing']} missing, {counts['extra']} extra, "
            f"{counts['different']} different"
            for entity, counts in verification.items()
            if counts["missing"] or counts["extra"] or counts["different"]
        ]

        login = ensure_demo_user()
        say(f"7. the web pages: user {login.username!r} (operators) may launch and control runs")
        return DemoResult(
            legacy_url=legacy_url,
            target_url=target_url,
            baseline=baseline,
            changes=changes,
            expected=expected,
            differential=differential,
            verification=verification,
            matches=not mismatches,
            login=login,
            mismatches=mismatches,
            explained=explained,
        )
    finally:
        legacy.dispose()
        target.dispose()


def explain_counts(changes: EntityChanges, truth: dict[str, set[str]]) -> str:
    """The analysis's counts from the changes made, each sum written out, so that the
    summary's two tables agree: ``new 3 = 2 inserted + 1 changed while quarantined, …``."""
    quarantined_changed = len(truth["new"] - changes.inserted)
    never_migrated = len(changes.deleted) - len(truth["deleted"])
    parts = [
        f"new {len(truth['new'])} = {len(changes.inserted)} inserted"
        + (f" + {quarantined_changed} changed while quarantined" if quarantined_changed else ""),
        f"modified {len(truth['modified'])}"
        + (
            f" (of {len(changes.updated)} updated: the others were quarantined)"
            if len(changes.updated) != len(truth["modified"])
            else ""
        ),
        f"deleted {len(truth['deleted'])}"
        + (
            f" ({never_migrated} more {'was' if never_migrated == 1 else 'were'} never migrated)"
            if never_migrated
            else ""
        ),
        f"retry {len(truth['retry'])} (quarantined, unchanged)",
    ]
    return ", ".join(parts)


def _run(options: RunOptions) -> dict:
    """One run to its end: here on the embedded default, followed on the workers."""
    started = start_run(options=options, user="demo", wait=True)
    return session_document(started.session)
