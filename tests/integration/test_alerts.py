"""Alerts when a session fails or completes with failed records: an e-mail (Django's locmem
backend: mail.outbox) and a JSON POST to a webhook (a tiny HTTP server on 127.0.0.1). A
webhook or mail server that fails is logged and never stops the run; a redirect is never
followed; a webhook URL that is not http(s) is refused at start-up.
"""

from __future__ import annotations

import os
import socket

import pytest
from django.core import mail

from migrationsapp.models import MigrationControl, MigrationExecutionLog
from migrationsapp.models.choices import EntityState, LogLevel, SessionStatus
from migrationsapp.services.alerts import alert_session_finished
from migrationsapp.services.runs import RunOptions, run_session
from tests.factories import MigrationControlFactory, MigrationStatusFactory
from tests.integration.test_settings import manage
from tests.support.reliability import record
from tests.support.sqlite_clinic import build_sqlite_clinic
from tests.support.webhook_server import webhook_server

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def clinic(tmp_path, settings, monkeypatch):
    settings.DIFFMIG_SQLITE_ROOT = tmp_path
    settings.REDIS_URL = None
    settings.DIFFMIG_ALERT_EMAILS = ["ops@example.org"]
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", "")
    monkeypatch.setenv("DIFFMIG_TARGET_URL", "")
    return build_sqlite_clinic(tmp_path)


def baseline(entities=None):
    return run_session(entities=entities, options=RunOptions(baseline=True, batch_size=200))


def failed_records(session) -> int:
    return sum(
        MigrationControl.objects.filter(session=session).values_list("failed_count", flat=True)
    )


def test_a_session_completed_with_failed_records_mails_and_posts_one_alert(clinic, settings):
    with webhook_server() as hook:
        settings.DIFFMIG_ALERT_WEBHOOK_URL = hook.url
        session = baseline()
    failed = failed_records(session)
    assert session.overall_status == SessionStatus.COMPLETED and failed > 0
    short = str(session.migration_session_id)[:8]
    assert [m.subject for m in mail.outbox] == [
        f"[diffmig] session {short} completed with {failed} failed"
    ]
    assert mail.outbox[0].to == ["ops@example.org"]
    assert str(session.migration_session_id) in mail.outbox[0].body
    [payload] = hook.payloads()
    assert payload["event"] == "session_completed_with_failures"
    assert payload["session_id"] == str(session.migration_session_id)
    assert payload["details"]["failed_records"] == failed
    assert payload["details"]["status"] == "completed"


def test_a_clean_session_or_a_cancelled_one_sends_nothing(settings):
    settings.DIFFMIG_ALERT_EMAILS = ["ops@example.org"]
    with webhook_server() as hook:
        settings.DIFFMIG_ALERT_WEBHOOK_URL = hook.url
        for status in (SessionStatus.COMPLETED, SessionStatus.CANCELLED):
            session = MigrationStatusFactory(overall_status=status)
            MigrationControlFactory(
                session=session, entity_type="orders", state=EntityState.COMPLETED, failed_count=0
            )
            assert alert_session_finished(session_id=session.migration_session_id) is None
    assert mail.outbox == [] and hook.requests == []


def test_a_failed_session_alerts_with_the_reason(clinic, settings):
    os.remove(clinic.legacy_url.removeprefix("sqlite:///"))
    with webhook_server() as hook:
        settings.DIFFMIG_ALERT_WEBHOOK_URL = hook.url
        session = baseline()
    assert session.overall_status == SessionStatus.FAILED
    short = str(session.migration_session_id)[:8]
    assert [m.subject for m in mail.outbox] == [f"[diffmig] session {short} failed"]
    body = mail.outbox[0].body
    assert "office: " in body and "'offices'" in body  # the entity and its reason
    assert f"diffmig resume {session.migration_session_id}" in body
    [payload] = hook.payloads()
    assert payload["event"] == "session_failed"
    assert payload["details"]["entities_failed"] == ["office", "doctor", "patient", "appointment"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_alerts_that_fail_are_logged_and_never_stop_the_run(clinic, settings):
    """The webhook redirects elsewhere, or nobody listens; the mail server is down."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = (
        "127.0.0.1",
        _closed_port(),
        2,
    )
    outcomes = []
    with webhook_server() as elsewhere, webhook_server() as hook:
        hook.redirect_to = elsewhere.url
        settings.DIFFMIG_ALERT_WEBHOOK_URL = hook.url
        outcomes.append(baseline(["office", "doctor"]))
        assert len(hook.requests) == 1 and elsewhere.requests == []  # not followed
    settings.DIFFMIG_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{_closed_port()}/hook"
    outcomes.append(baseline(["office", "doctor"]))

    assert [s.overall_status for s in outcomes] == [SessionStatus.COMPLETED] * 2
    warnings = list(
        MigrationExecutionLog.objects.filter(
            log_level=LogLevel.WARN, message__contains="(alert: session"
        ).values_list("message", flat=True)
    )
    webhook = [w for w in warnings if w.startswith("the alert webhook")]
    mails = [w for w in warnings if w.startswith("the alert e-mail to ops@example.org failed")]
    assert len(webhook) == 2 and len(mails) == 2
    assert f"a redirect to {elsewhere.url.split('?')[0]}, refused" in webhook[0]
    assert "token=abc" not in webhook[0]  # the webhook's query (a token) is never logged
    assert "Connection refused" in webhook[1]
    record(
        "faults",
        "alert delivery fails (webhook redirects or is down, mail server down)",
        tried=3,
        held=3,
        outcome="the run completes; each failed alert is one warning in the log",
    )


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://hooks.example.org/x", "gopher://127.0.0.1:70/", "hooks"]
)
def test_a_webhook_url_that_is_not_http_is_refused_at_start_up(url):
    result = manage("check", DIFFMIG_ALERT_WEBHOOK_URL=url)
    assert result.returncode != 0
    assert "DIFFMIG_ALERT_WEBHOOK_URL must be an http:// or https:// URL" in result.stderr
    record(
        "hostile connection",
        "alert webhook URL with a scheme other than http(s)",
        tried=1,
        held=1,
        outcome="refused at start-up, naming the setting",
    )
