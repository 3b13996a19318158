"""Schedules: the page (create, pause, resume, delete; refusals in one line), the dashboard's
next runs, and the tick (services.run_schedules.fire_due, as the watchdog calls it): a due
schedule launches a differential session through the launch service; a tick while a
session holds the entities is skipped and logged, and the second skip in a row alerts.

Launched sessions are handed to the executor after commit; here that hand-over is captured
(the session is executed in the test's thread when a test needs it to end).
"""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from migrationsapp.models import (
    MigrationExecutionLog,
    MigrationStatus,
    RunSchedule,
    SchemaMappingDefinition,
)
from migrationsapp.models.choices import LogLevel, SessionStatus
from migrationsapp.services.run_schedules import (
    LAUNCHED,
    SKIPPED,
    create_schedule,
    fire_due,
    next_run_after,
)
from migrationsapp.services.runs import RunOptions, execute_session, launch_session
from tests.support.reliability import record
from tests.support.sqlite_clinic import build_sqlite_clinic
from tests.support.webhook_server import webhook_server

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

NOW = dt.datetime(2026, 3, 10, 8, 15, tzinfo=dt.UTC)


@pytest.fixture
def clinic(tmp_path, settings, monkeypatch):
    settings.DIFFMIG_SQLITE_ROOT = tmp_path
    settings.REDIS_URL = None
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", "")
    monkeypatch.setenv("DIFFMIG_TARGET_URL", "")
    return build_sqlite_clinic(tmp_path)


def due(schedule: RunSchedule, at: dt.datetime = NOW) -> None:
    RunSchedule.objects.filter(pk=schedule.pk).update(next_run_at=at - dt.timedelta(minutes=1))


# -- the page -----------------------------------------------------------------------------------


def test_an_operator_creates_pauses_resumes_and_deletes_a_schedule(operator_client, clinic):
    before = timezone.now()
    response = operator_client.post(
        reverse("schedules:create"),
        {"name": "nightly offices", "entities": ["office"], "interval_hours": "6", "cron": ""},
    )
    assert response.status_code == 302
    schedule = RunSchedule.objects.get()
    assert (schedule.entities, schedule.interval_hours, schedule.cron) == (["office"], 6, "")
    assert schedule.created_by == "operator" and not schedule.paused
    assert before + dt.timedelta(hours=6) <= schedule.next_run_at
    assert schedule.next_run_at <= timezone.now() + dt.timedelta(hours=6)

    page = operator_client.get(reverse("schedules:list")).content.decode()
    assert 'data-schedule="nightly offices"' in page and "every 6 hours" in page
    assert "Schedules fire only with workers" in page  # no REDIS_URL here
    dashboard = operator_client.get(reverse("runs:dashboard")).content.decode()
    assert "Next scheduled runs" in dashboard
    assert f"{schedule.next_run_at:%Y-%m-%d %H:%M} UTC" in dashboard

    operator_client.post(reverse("schedules:pause", args=[schedule.pk]))
    schedule.refresh_from_db()
    assert schedule.paused
    assert 'class="badge paused"' in operator_client.get(reverse("runs:dashboard")).content.decode()
    due(schedule, timezone.now())
    assert fire_due() == []  # a paused schedule does not fire
    assert MigrationStatus.objects.count() == 0

    operator_client.post(reverse("schedules:resume", args=[schedule.pk]))
    schedule.refresh_from_db()
    assert not schedule.paused
    assert schedule.next_run_at > timezone.now() + dt.timedelta(hours=5)  # counted from now

    operator_client.post(reverse("schedules:delete", args=[schedule.pk]))
    assert RunSchedule.objects.count() == 0
    messages = list(
        MigrationExecutionLog.objects.filter(message__startswith="schedule nightly offices")
        .order_by("id")
        .values_list("message", flat=True)
    )
    assert messages == [
        "schedule nightly offices: paused by operator",
        "schedule nightly offices: resumed by operator",
        "schedule nightly offices: deleted by operator",
    ]


REFUSED = [
    (
        {"name": "a", "interval_hours": "", "cron": ""},
        "give either an interval in hours or a cron expression, not neither",
    ),
    ({"name": "a", "interval_hours": "2", "cron": "0 * * * *"}, "not both"),
    (
        {"name": "a", "interval_hours": "", "cron": "61 * * * *"},
        "'61 * * * *' is not a cron expression",
    ),
    (
        {"name": "a", "interval_hours": "", "cron": "every day"},
        "'every day' is not a cron expression",
    ),
    ({"name": "a", "interval_hours": "", "cron": "* * * * * * * *"}, "is not a cron expression"),
    (
        {"name": "a", "interval_hours": "0", "cron": ""},
        "Ensure this value is greater than or equal to 1.",
    ),
    (
        {"name": "a", "interval_hours": "-3", "cron": ""},
        "Ensure this value is greater than or equal to 1.",
    ),
    ({"name": "a", "interval_hours": "1e9", "cron": ""}, "Enter a whole number."),
    ({"name": "   ", "interval_hours": "1", "cron": ""}, "This field is required."),
    (
        {"name": "a", "interval_hours": "1", "entities": ["nurse"]},
        "Select a valid choice. nurse is not one of the available choices.",
    ),
]


def test_a_schedule_the_tick_could_not_follow_is_refused_with_one_line(operator_client, clinic):
    held = 0
    for data, message in REFUSED:
        response = operator_client.post(reverse("schedules:create"), data)
        assert response.status_code == 400, data
        assert message in html.unescape(response.content.decode()), (data, message)
        held += 1
    operator_client.post(reverse("schedules:create"), {"name": "a", "interval_hours": "1"})
    duplicate = operator_client.post(
        reverse("schedules:create"), {"name": "a", "interval_hours": "2"}
    )
    assert "a schedule named 'a' exists already" in html.unescape(duplicate.content.decode())
    assert RunSchedule.objects.count() == 1
    record(
        "web",
        "schedule form: no or both timings, bad cron or interval, blank name, unknown entity, dupe",
        tried=len(REFUSED) + 1,
        held=held + 1,
        outcome="refused with one line naming what to change; nothing stored",
    )


def test_cron_times_are_utc_and_strictly_after():
    at = dt.datetime(2026, 3, 10, 2, 30, tzinfo=dt.UTC)
    assert next_run_after(interval_hours=None, cron="30 2 * * *", after=at) == at + dt.timedelta(
        days=1
    )
    assert next_run_after(interval_hours=None, cron="0 */6 * * 1-5", after=NOW) == dt.datetime(
        2026, 3, 10, 12, 0, tzinfo=dt.UTC
    )
    assert next_run_after(interval_hours=3, cron="", after=NOW) == NOW + dt.timedelta(hours=3)


# -- the tick -----------------------------------------------------------------------------------


def test_a_due_schedule_launches_a_differential_session_once(
    clinic, django_capture_on_commit_callbacks
):
    schedule = create_schedule(name="offices", entities=["office"], interval_hours=4, now=NOW)
    assert schedule.next_run_at == NOW + dt.timedelta(hours=4)
    assert fire_due(now=NOW) == []  # not yet due
    due(schedule)

    with django_capture_on_commit_callbacks(execute=False) as handed_over:
        ticks = fire_due(now=NOW)
        again = fire_due(now=NOW)  # the same tick, as a second worker would see it

    assert [t.outcome for t in ticks] == [LAUNCHED] and again == []
    assert len(handed_over) == 1
    session = MigrationStatus.objects.get()
    assert session.migration_session_id == ticks[0].session_id
    assert session.launched_by == "schedule offices"
    assert session.options["entities"] == ["office"] and session.options["baseline"] is False
    schedule.refresh_from_db()
    assert schedule.next_run_at == NOW + dt.timedelta(hours=4)
    assert (schedule.last_outcome, schedule.last_session_id) == (LAUNCHED, ticks[0].session_id)
    assert schedule.last_run_at == NOW
    done = execute_session(session_id=session.migration_session_id)
    assert done.overall_status == SessionStatus.COMPLETED


def test_a_tick_while_a_session_holds_the_entities_is_skipped_and_twice_alerts(clinic, settings):
    settings.DIFFMIG_ALERT_EMAILS = ["ops@example.org", "dba@example.org"]
    holder = launch_session(entities=["office"], options=RunOptions(), user="someone")
    schedule = create_schedule(name="hourly", interval_hours=1, now=NOW)  # all: office included
    with webhook_server() as hook:
        settings.DIFFMIG_ALERT_WEBHOOK_URL = hook.url
        due(schedule)
        first = fire_due(now=NOW)
        assert [t.outcome for t in first] == [SKIPPED]
        assert mail.outbox == [] and hook.requests == []  # one skip: no alert yet
        later = NOW + dt.timedelta(hours=1)
        due(schedule, later)
        second = fire_due(now=later)

    assert [t.outcome for t in second] == [SKIPPED]
    assert MigrationStatus.objects.count() == 1  # only the holder
    schedule.refresh_from_db()
    assert (schedule.last_outcome, schedule.consecutive_skips) == (SKIPPED, 2)
    assert schedule.next_run_at == later + dt.timedelta(hours=1)
    skipped = MigrationExecutionLog.objects.filter(
        message__startswith="schedule hourly: tick skipped"
    )
    assert skipped.count() == 2
    assert {entry.log_level for entry in skipped} == {LogLevel.WARN}
    assert f"in session {holder.migration_session_id}" in skipped.first().message
    assert len(mail.outbox) == 1
    alert = mail.outbox[0]
    assert alert.subject == "[diffmig] schedule hourly skipped 2 times in a row"
    assert alert.to == ["ops@example.org", "dba@example.org"]
    assert str(holder.migration_session_id) in alert.body
    assert [r["path"] for r in hook.requests] == ["/hooks/diffmig?token=abc"]
    payload = hook.payloads()[0]
    assert (payload["event"], payload["schedule"]) == ("schedule_skipped", "hourly")
    assert payload["details"] == {"consecutive_skips": 2}
    assert hook.requests[0]["content_type"] == "application/json"
    record(
        "faults",
        "schedule tick while a session holds its entities",
        tried=2,
        held=2,
        outcome="skipped and logged, no second session; the second skip in a row sends one alert",
    )


def test_a_launched_tick_resets_the_skips(clinic, django_capture_on_commit_callbacks):
    schedule = create_schedule(name="hourly", interval_hours=1, now=NOW)
    RunSchedule.objects.filter(pk=schedule.pk).update(consecutive_skips=3)
    due(schedule)
    with django_capture_on_commit_callbacks(execute=False):
        assert [t.outcome for t in fire_due(now=NOW)] == [LAUNCHED]
    schedule.refresh_from_db()
    assert schedule.consecutive_skips == 0


def test_a_schedule_whose_entity_lost_its_mapping_is_refused_and_logged(
    clinic, django_capture_on_commit_callbacks
):
    schedule = create_schedule(name="doctors", entities=["doctor"], interval_hours=1, now=NOW)
    SchemaMappingDefinition.objects.filter(entity_type="doctor").update(is_active=False)
    due(schedule)
    ticks = fire_due(now=NOW)
    assert [t.outcome for t in ticks] == ["refused"]
    assert MigrationStatus.objects.count() == 0
    schedule.refresh_from_db()
    assert schedule.last_outcome == "refused" and schedule.consecutive_skips == 0
    assert MigrationExecutionLog.objects.filter(
        log_level=LogLevel.ERROR, message__startswith="schedule doctors: the launch was refused"
    ).exists()
