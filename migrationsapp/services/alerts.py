"""Alerts: an e-mail and a webhook POST when a session fails, completes with failed records,
or a schedule's tick is skipped twice in a row.

Recipients are ``DIFFMIG_ALERT_EMAILS`` (Django's mail settings carry the server);
``DIFFMIG_ALERT_WEBHOOK_URL`` (http or https only, checked at start-up) receives the same
alert as JSON. An alert is an outbound call from a worker in the middle of its work: it has
a timeout, follows no redirect (a 3xx is a failure, so the hook cannot bounce the POST to
another host), and never raises into the run — a failed alert is logged, and the run goes on.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Sum

from migrationsapp.models import MigrationControl, MigrationStatus, RunSchedule
from migrationsapp.models.choices import AuditAction, LogLevel, OperationType, SessionStatus
from migrationsapp.services.logs import log_event

logger = logging.getLogger("diffmig.alerts")

SESSION_FAILED = "session_failed"
SESSION_COMPLETED_WITH_FAILURES = "session_completed_with_failures"
SCHEDULE_SKIPPED = "schedule_skipped"
SKIPS_BEFORE_ALERT = 2


@dataclass(frozen=True)
class Alert:
    event: str
    subject: str
    text: str
    session_id: str | None = None
    schedule: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class AlertOutcome:
    mailed: int = 0  # recipients
    posted: bool = False
    errors: list[str] = field(default_factory=list)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is refused, never followed (the POST would go to wherever it points)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(
            req.full_url, code, f"a redirect to {_shown(newurl)}, refused", headers, fp
        )


def _post(url: str, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(  # noqa: S310 (http(s) only: checked in settings)
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "diffmig-alerts"},
        method="POST",
    )
    opener = urllib.request.build_opener(_NoRedirects)
    with opener.open(request, timeout=settings.DIFFMIG_ALERT_WEBHOOK_TIMEOUT) as response:
        response.read(1024)


def send_alert(alert: Alert) -> AlertOutcome:
    """Mail and POST one alert; never raises. What failed is logged (and returned)."""
    outcome = AlertOutcome()
    recipients = list(settings.DIFFMIG_ALERT_EMAILS)
    if recipients:
        try:
            send_mail(
                subject=f"[diffmig] {alert.subject}",
                message=alert.text,
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=recipients,
            )
            outcome.mailed = len(recipients)
        except Exception as error:  # an alert never stops the run
            outcome.errors.append(f"the alert e-mail to {', '.join(recipients)} failed: {error}")
    url = settings.DIFFMIG_ALERT_WEBHOOK_URL
    if url:
        try:
            _post(url, asdict(alert))
            outcome.posted = True
        except Exception as error:
            outcome.errors.append(f"the alert webhook {_shown(url)} failed: {error}")
    for message in outcome.errors:
        logger.error("%s (%s)", message, alert.subject)
        log_event(
            session_id=uuid.UUID(alert.session_id) if alert.session_id else None,
            operation=OperationType.CHECKPOINT_SAVE,
            action=AuditAction.ALERT_NOT_SENT,
            level=LogLevel.WARN,
            message=f"{message} (alert: {alert.subject}); check EMAIL_* and "
            "DIFFMIG_ALERT_EMAILS, or DIFFMIG_ALERT_WEBHOOK_URL",
            context={"alert": alert.event},
        )
    return outcome


def _shown(url: str) -> str:
    """The webhook's scheme, host and path, never its query (it may carry a token)."""
    return url.split("?", 1)[0]


def _enabled() -> bool:
    return bool(settings.DIFFMIG_ALERT_EMAILS or settings.DIFFMIG_ALERT_WEBHOOK_URL)


def session_alert(session: MigrationStatus) -> Alert | None:
    """The alert a finished session calls for: failed, or completed with failed records."""
    short = str(session.migration_session_id)[:8]
    failed_records = (
        MigrationControl.objects.filter(session_id=session.migration_session_id).aggregate(
            n=Sum("failed_count")
        )["n"]
        or 0
    )
    details = {
        "status": session.overall_status,
        "processed": session.total_records_processed,
        "failed_records": failed_records,
        "entities_failed": list(session.entities_failed or []),
    }
    if session.overall_status == SessionStatus.FAILED:
        reasons = "\n".join(
            f"{entity}: {message}"
            for entity, message in (session.error_summary or {}).get("entities", {}).items()
        )
        return Alert(
            event=SESSION_FAILED,
            subject=f"session {short} failed",
            text=f"Session {session.migration_session_id} failed"
            + (f" ({', '.join(session.entities_failed)})" if session.entities_failed else "")
            + f": {session.total_records_processed} records processed, {failed_records} "
            f"failed.\n{reasons}\nResume it from its page or with: diffmig resume "
            f"{session.migration_session_id}",
            session_id=str(session.migration_session_id),
            details=details,
        )
    if session.overall_status == SessionStatus.COMPLETED and failed_records:
        return Alert(
            event=SESSION_COMPLETED_WITH_FAILURES,
            subject=f"session {short} completed with {failed_records} failed",
            text=f"Session {session.migration_session_id} completed: "
            f"{session.total_records_processed} records processed, {failed_records} failed "
            "(quarantined with their reason; the next run tries them again). See the "
            "quarantine page.",
            session_id=str(session.migration_session_id),
            details=details,
        )
    return None


def alert_session_finished(*, session_id: uuid.UUID) -> AlertOutcome | None:
    """Called once where a session ends completed or failed; never raises."""
    if not _enabled():
        return None
    try:
        session = MigrationStatus.objects.get(migration_session_id=session_id)
        alert = session_alert(session)
    except Exception:  # the session's end must not fail on its alert
        logger.exception("session %s: its alert could not be prepared", session_id)
        return None
    return send_alert(alert) if alert else None


def alert_schedule_skipped(*, schedule: RunSchedule) -> AlertOutcome | None:
    """A schedule's tick was skipped ``SKIPS_BEFORE_ALERT`` times in a row; never raises."""
    if not _enabled():
        return None
    return send_alert(
        Alert(
            event=SCHEDULE_SKIPPED,
            subject=f"schedule {schedule.name} skipped {schedule.consecutive_skips} times in a row",
            text=f"Schedule {schedule.name} ({schedule.every}) could not launch "
            f"{schedule.consecutive_skips} times in a row: {schedule.last_message}\n"
            "A session still holds its entities: look at it on the runs page (pause or cancel "
            "it if it is stuck), or pause the schedule.",
            schedule=schedule.name,
            details={"consecutive_skips": schedule.consecutive_skips},
        )
    )
