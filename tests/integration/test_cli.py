"""The command line's contract (docs/mapping.md, docs/cli.md): outputs, refusals and exit codes."""

from __future__ import annotations

import json

import pytest

from migrationsapp.demo.clinic import (
    MAPPING_FILE,
    create_destination_schema,
    create_legacy_schema,
    generate_clinic,
    load_legacy,
)
from migrationsapp.models import Connection, MigrationStatus, SchemaMappingDefinition
from tests.databases import engine_for
from tests.integration.conftest import cli

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def clinic(mysql_to_pg):
    legacy_url, target_url = mysql_to_pg
    legacy, target = engine_for(legacy_url), engine_for(target_url)
    create_legacy_schema(legacy)
    load_legacy(legacy, generate_clinic(seed=5))
    create_destination_schema(target)
    yield legacy_url, target_url
    legacy.dispose()
    target.dispose()


@pytest.fixture
def imported(clinic):
    result = cli("mappings", "import", str(MAPPING_FILE))
    assert result.code == 0, result.err
    return clinic


def test_import_export_import_creates_nothing_new(imported, tmp_path):
    exported = cli("mappings", "export")
    assert exported.code == 0
    assert "${DIFFMIG_LEGACY_URL}" in exported.out
    path = tmp_path / "exported.yaml"
    path.write_text(exported.out)
    again = cli("mappings", "import", str(path))
    assert again.code == 0
    assert "stored" not in again.out
    assert again.out.count("unchanged") == 4
    assert SchemaMappingDefinition.objects.count() == 4
    assert cli("mappings", "export").out == exported.out


def test_a_refused_import_changes_nothing(imported, tmp_path):
    before = cli("mappings", "export").out
    broken = MAPPING_FILE.read_text().replace(
        "{source: email, destination: email, transform: email}",
        "{source: e_mail, destination: email, transform: email}",
    )
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    refused = cli("mappings", "import", str(path))
    assert refused.code == 2
    assert "entity 'doctor'" in refused.err
    assert "e_mail" in refused.err
    assert SchemaMappingDefinition.objects.count() == 4
    assert cli("mappings", "export").out == before


def test_import_refuses_a_variable_that_is_not_diffmigs(imported, tmp_path):
    text = MAPPING_FILE.read_text().replace("${DIFFMIG_TARGET_URL}", "${SECRET_KEY}")
    path = tmp_path / "secret.yaml"
    path.write_text(text)
    refused = cli("mappings", "import", str(path), "--dry-run")
    assert refused.code == 2
    assert "SECRET_KEY" in refused.err


def test_a_password_in_a_mapping_file_is_stored_encrypted_and_never_exported(
    clinic, tmp_path, monkeypatch
):
    _legacy_url, target_url = clinic
    monkeypatch.setenv("DIFFMIG_TARGET_URL", target_url)
    # The same database through a URL that carries a (harmless, ignored by trust auth) password.
    with_password = target_url.replace("postgres@", "postgres:s3cret-pw@")
    text = MAPPING_FILE.read_text().replace("${DIFFMIG_TARGET_URL}", with_password)
    path = tmp_path / "literal.yaml"
    path.write_text(text)
    assert cli("mappings", "import", str(path)).code == 0
    stored = Connection.objects.get(name="target")
    assert "s3cret-pw" not in stored.url
    assert stored.password_encrypted and "s3cret-pw" not in stored.password_encrypted
    exported = cli("mappings", "export")
    assert "s3cret-pw" not in exported.out
    tested = cli("connections", "test")
    assert tested.code == 0, tested.out
    assert "s3cret-pw" not in tested.out + tested.err


def test_connections_test_reports_an_unreachable_database_with_exit_4(imported, monkeypatch):
    monkeypatch.setenv("DIFFMIG_TARGET_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    result = cli("connections", "test")
    assert result.code == 4
    assert "legacy: ok" in result.out
    assert "target: FAILED" in result.out


def test_status_logs_and_session_control_exit_codes(imported):
    run = cli("run", "--json")
    assert run.code == 0
    document = json.loads(run.out)
    session_id = document["session"]["id"]
    for key in ("id", "status", "started_at", "finished_at", "processed", "failed", "skipped"):
        assert key in document["session"]
    assert {"remaining", "rows_per_s"} <= set(document["session"])
    status = json.loads(cli("status", "--json").out)
    assert status["session"]["id"] == session_id
    assert status["entities"] == document["entities"]

    warnings = cli("logs", session_id[:8], "--level", "WARN").out.splitlines()
    assert warnings and all((" WARN " in line or " ERROR " in line) for line in warnings)
    every = cli("logs", session_id, "--level", "debug").out.splitlines()
    assert len(every) > len(warnings)
    assert cli("logs", session_id, "--level", "loud").code == 2

    # A completed session can be neither paused, resumed nor cancelled.
    for action in ("pause", "resume", "cancel"):
        refused = cli(action, session_id)
        assert refused.code == 2, action
        assert "completed" in refused.err
    assert cli("status", "00000000-0000-0000-0000-000000000000").code == 4
    assert cli("pause", "not-a-session").code == 4


def test_delete_guard_refuses_the_entity_and_blocks_its_dependants(imported, clinic):
    legacy_url, _ = clinic
    assert cli("run").code == 0
    legacy = engine_for(legacy_url)
    with legacy.begin() as conn:
        conn.exec_driver_sql("DELETE FROM appointments")
        conn.exec_driver_sql("DELETE FROM patients WHERE code LIKE 'P-00%%'")
    legacy.dispose()
    run = cli("run", "--json")
    assert run.code == 2
    document = json.loads(run.out)
    entities = document["entities"]
    assert entities["patient"]["status"] == "failed"
    assert "would delete" in document["session"]["errors"]["patient"]
    assert entities["patient"]["processed"] == 0
    # Its dependants are not run; the entities it depends on are.
    assert entities["appointment"]["status"] == "blocked"
    assert entities["appointment"]["processed"] == 0
    assert entities["office"]["status"] == entities["doctor"]["status"] == "completed"
    # With the share raised for this run, the deletes go through.
    assert cli("run", "--max-delete-share", "1").code == 0


@pytest.mark.parametrize("size", ["0", "100001"])
def test_a_batch_size_outside_the_limits_is_refused_before_anything_runs(imported, size):
    refused = cli("run", "--batch-size", size)

    assert refused.code == 2
    assert f"the batch size must be between 1 and 100,000 (got {int(size):,})" in refused.err
    assert MigrationStatus.objects.count() == 0
