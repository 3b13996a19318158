"""The demo runs end to end on the embedded default and its summary matches what it changed."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import override_settings

from migrationsapp.models import MigrationStatus

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]


def test_demo_migrates_the_clinic_and_finds_exactly_what_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", f"sqlite:///{tmp_path / 'demo' / 'legacy.sqlite3'}")
    monkeypatch.setenv("DIFFMIG_TARGET_URL", f"sqlite:///{tmp_path / 'demo' / 'target.sqlite3'}")
    out = io.StringIO()
    with override_settings(DIFFMIG_SQLITE_ROOT=tmp_path):
        call_command("demo", stdout=out)
    text = out.getvalue()
    assert "found exactly what changed, and the destination verifies equal" in text
    sessions = list(MigrationStatus.objects.order_by("created_at"))
    assert [s.overall_status for s in sessions] == ["completed", "completed"]
    assert sessions[0].options["baseline"] is True
    assert sessions[1].total_records_processed > 0
    # A second demo starts again from a fresh destination and still matches.
    out = io.StringIO()
    with override_settings(DIFFMIG_SQLITE_ROOT=tmp_path):
        call_command("demo", stdout=out)
    assert "found exactly what changed, and the destination verifies equal" in out.getvalue()
