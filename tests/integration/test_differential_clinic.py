"""The differential engine end to end on the real services: MariaDB legacy → PostgreSQL.

A generated legacy clinic (offices → doctors → patients → appointments, with text and
composite keys, zero dates, emoji, planted bad rows) is migrated with a baseline; a round of
changes with a known ground truth (inserts, updates, silent updates, parent-and-children
deletes, a moved reference, an unmapped-column change, a fixed row) is applied; the analysis
must count exactly that, and after the run the destination must equal the expected rows
computed independently of the engine.
"""

from __future__ import annotations

import json

import pytest

from migrationsapp.demo.clinic import (
    ENTITIES,
    MAPPING_FILE,
    apply_changes,
    create_destination_schema,
    create_legacy_schema,
    expected_analysis,
    expected_destination,
    expected_failures,
    generate_clinic,
    load_legacy,
)
from migrationsapp.models import QuarantinedRecord
from tests.databases import engine_for
from tests.integration.conftest import cli
from tests.support.clinic_run import change_set, destination_by_key, record_map

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SEED = 11


@pytest.fixture
def clinic(mysql_to_pg):
    legacy_url, target_url = mysql_to_pg
    legacy, target = engine_for(legacy_url), engine_for(target_url)
    data = generate_clinic(seed=SEED)
    create_legacy_schema(legacy)
    load_legacy(legacy, data)
    create_destination_schema(target)
    yield data, legacy, target_url
    legacy.dispose()
    target.dispose()


def run_json(*args: str) -> tuple[int, dict]:
    result = cli("run", "--json", *args)
    assert result.out, result.err
    return result.code, json.loads(result.out)


def quarantined() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {entity: set() for entity in ENTITIES}
    for entity, key in QuarantinedRecord.objects.filter(resolved_at__isnull=True).values_list(
        "entity_type", "legacy_key_text"
    ):
        out[entity].add(key)
    return out


def assert_quarantine_is(expected: dict[str, set[str]]) -> None:
    found = quarantined()
    for entity in ENTITIES:
        extra, missing = found[entity] - expected[entity], expected[entity] - found[entity]
        assert (extra, missing) == (set(), set()), entity


def assert_counting_identity(document: dict) -> None:
    for name, counts in document["entities"].items():
        done = counts["processed"] + counts["failed"] + counts["skipped"]
        changes = counts["new"] + counts["modified"] + counts["deleted"] + counts["retry"]
        assert done == changes, name


def test_baseline_then_differential_run_matches_the_ground_truth(clinic):
    data, legacy, target_url = clinic
    assert cli("mappings", "import", str(MAPPING_FILE)).code == 0

    # Baseline: every legacy row is new; the planted rows (and their children) fail.
    analysis = cli("analyze", "--json")
    assert analysis.code == 0, analysis.err
    counts = json.loads(analysis.out)["entities"]
    for entity in ENTITIES:
        assert counts[entity]["new"] == len(data.rows[entity])
        assert counts[entity]["modified"] == counts[entity]["deleted"] == 0

    code, document = run_json("--baseline", "--batch-size", "37")
    assert code == 0
    assert document["session"]["status"] == "completed"
    assert_counting_identity(document)
    failures = expected_failures(data)
    for entity in ENTITIES:
        assert document["entities"][entity]["failed"] == len(failures[entity])
    assert destination_by_key(target_url) == expected_destination(data)
    assert_quarantine_is(failures)
    uuids_before = record_map()

    # A round of changes with a known ground truth.
    before = data.snapshot()
    log = apply_changes(legacy, data, seed=SEED + 1)
    truth = expected_analysis(before, log)

    analysis = cli("analyze", "--json")
    document = json.loads(analysis.out)
    for entity in ENTITIES:
        found = document["entities"][entity]
        assert {kind: found[kind] for kind in truth[entity]} == {
            kind: len(keys) for kind, keys in truth[entity].items()
        }, entity
        keys = change_set(found["analysis_id"])
        for kind in ("new", "modified", "deleted", "retry"):
            assert keys[kind] == truth[entity][kind], (entity, kind)

    code, document = run_json("--batch-size", "23")
    assert code == 0, document["session"]["errors"]
    assert_counting_identity(document)
    assert destination_by_key(target_url) == expected_destination(data)
    assert_quarantine_is(expected_failures(data))

    # Surviving records keep their UUIDs for ever.
    uuids_after = record_map()
    for entity in ENTITIES:
        survivors = set(uuids_before[entity]) & set(uuids_after[entity])
        assert survivors, entity
        assert {k: uuids_after[entity][k] for k in survivors} == {
            k: uuids_before[entity][k] for k in survivors
        }

    # A run right after: only the still-quarantined rows are tried, and fail again.
    code, document = run_json()
    assert code == 0
    still_failing = expected_failures(data)
    for entity in ENTITIES:
        counts = document["entities"][entity]
        assert (counts["new"], counts["modified"], counts["deleted"]) == (0, 0, 0), entity
        assert counts["retry"] == counts["failed"] == len(still_failing[entity])
        assert counts["processed"] == 0
    assert destination_by_key(target_url) == expected_destination(data)


def test_lookup_shows_a_records_history(clinic):
    data, _legacy, _target_url = clinic
    assert cli("mappings", "import", str(MAPPING_FILE)).code == 0
    assert cli("run").code == 0
    entity = "appointment"
    key = sorted(expected_destination(data)[entity])[0]
    found = cli("lookup", entity, key, "--json")
    assert found.code == 0
    history = json.loads(found.out)
    assert history["uuid"] == str(record_map()[entity][key])
    assert [e["action"] for e in history["events"]] == ["created"]
    assert history["events"][0]["mapping_version"] == 1
    assert cli("lookup", entity, "no-such/9").code == 1


def test_dry_run_writes_nothing(clinic):
    data, _legacy, target_url = clinic
    assert cli("mappings", "import", str(MAPPING_FILE)).code == 0
    code, document = run_json("--dry-run")
    assert code == 0
    assert document["entities"]["office"]["new"] == len(data.rows["office"])
    assert destination_by_key(target_url) == {entity: {} for entity in ENTITIES}
    assert record_map() == {entity: {} for entity in ENTITIES}
    assert quarantined() == {entity: set() for entity in ENTITIES}
