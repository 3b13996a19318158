"""`diffmig logs --json`: a session's entries with their action code and actor."""

from __future__ import annotations

import json

import pytest

from migrationsapp.models.choices import AuditAction, LogLevel, OperationType
from migrationsapp.services.logs import log_event
from tests.factories import MigrationStatusFactory
from tests.integration.conftest import cli

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_logs_json_names_each_entrys_action_and_actor(db):
    session = MigrationStatusFactory()
    other = MigrationStatusFactory()
    sid = session.migration_session_id
    log_event(
        session_id=sid,
        operation=OperationType.CHECKPOINT_SAVE,
        action=AuditAction.SESSION_PAUSE_REQUESTED,
        actor="alice",
        message="pause requested by alice",
    )
    log_event(
        session_id=sid,
        operation=OperationType.RECORD_MIGRATION,
        action=AuditAction.RECORD_FAILED,
        level=LogLevel.WARN,
        entity="doctor",
        record_id="7",
        message="doctor 7: refused",
        error_details={"rule": "required", "field": "email"},
    )
    log_event(
        session_id=other.migration_session_id,
        operation=OperationType.CHECKPOINT_SAVE,
        action=AuditAction.SESSION_PAUSE_REQUESTED,
        actor="bob",
        message="pause requested by bob",
    )

    result = cli("logs", str(sid), "--json")

    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["session"] == str(sid)
    shown = [
        {key: entry[key] for key in ("action", "actor", "entity", "record", "error_details")}
        for entry in document["entries"]
    ]
    assert shown == [
        {
            "action": "session.pause_requested",
            "actor": "alice",
            "entity": "",
            "record": None,
            "error_details": None,
        },
        {
            "action": "record.failed",
            "actor": "",
            "entity": "doctor",
            "record": "7",
            "error_details": {"rule": "required", "field": "email"},
        },
    ]
    warnings = json.loads(cli("logs", str(sid), "--json", "--level", "warn").out)
    assert [entry["action"] for entry in warnings["entries"]] == ["record.failed"]


def test_logs_json_with_follow_is_refused(db):
    session = MigrationStatusFactory()

    result = cli("logs", str(session.migration_session_id), "--json", "--follow")

    assert result.code == 2
    assert "--json prints one document" in result.err
