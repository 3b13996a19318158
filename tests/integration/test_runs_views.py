"""The runs pages through Django's test client: dashboard, two-step launch, session page, controls.

Launches go through the real services on a SQLite legacy clinic; the session they submit is
executed in the test's own thread (the executor's after-commit callback is captured, not run),
so every assertion sees exactly what the run did.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from migrationsapp.models import (
    MigrationControl,
    MigrationExecutionLog,
    MigrationStatus,
    RecordMap,
)
from migrationsapp.models.choices import AuditAction, EntityState, OperationType, SessionStatus
from migrationsapp.selectors.progress import format_duration
from migrationsapp.selectors.throughput import throughput_chart
from migrationsapp.services.runs import RunOptions, execute_session, launch_session, run_session
from tests.factories import (
    MigrationControlFactory,
    MigrationExecutionLogFactory,
    MigrationStatusFactory,
)
from tests.support.sqlite_clinic import build_sqlite_clinic

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

CLINIC = ["office", "doctor", "patient", "appointment"]
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def clinic(tmp_path, settings, monkeypatch):
    settings.DIFFMIG_SQLITE_ROOT = tmp_path
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", "")
    monkeypatch.setenv("DIFFMIG_TARGET_URL", "")
    return build_sqlite_clinic(tmp_path)


def launch_data(entities=(), *, mode="differential", batch_size=100, **extra) -> dict:
    return {"entities": list(entities), "mode": mode, "batch_size": batch_size, **extra}


def confirmed(deletes: dict[str, int] | None = None, **extra) -> dict:
    deletes = deletes or {}
    data = launch_data(CLINIC, **extra)
    data.update({f"deletes_{name}": deletes.get(name, 0) for name in CLINIC})
    return data


def running_session(**fields) -> MigrationStatus:
    session = MigrationStatusFactory(
        overall_status=SessionStatus.RUNNING,
        started_at=timezone.now() - dt.timedelta(seconds=10),
        options={"entities": ["orders"], "batch_size": 50},
        **fields,
    )
    MigrationControlFactory(
        session=session,
        entity_type="orders",
        state=EntityState.RUNNING,
        new_count=100,
        processed_count=40,
        failed_count=5,
        skipped_count=5,
    )
    return session


def finished_session(status=SessionStatus.COMPLETED, ago=60) -> MigrationStatus:
    now = timezone.now()
    return MigrationStatusFactory(
        overall_status=status,
        started_at=now - dt.timedelta(seconds=ago + 30),
        completed_at=now - dt.timedelta(seconds=ago),
    )


# -- dashboard ------------------------------------------------------------------------------------


def test_anonymous_dashboard_redirects_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_operator_dashboard_offers_the_launch_form_with_the_active_entities(
    operator_client, clinic
):
    response = operator_client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="launch"' in html
    assert re.findall(r'name="entities" value="(\w+)"', html) == CLINIC
    assert 'hx-post="/launch/analyze/"' in html


@pytest.mark.parametrize("persona", ["auditor_client", "editor_client"])
def test_who_may_not_launch_sees_sessions_but_no_launch_form(request, persona, clinic):
    session = finished_session()
    response = request.getfixturevalue(persona).get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="launch"' not in html
    assert "Analyse" not in html
    assert str(session.migration_session_id)[:8] in html


def test_dashboard_lists_sessions_with_their_counts_and_duration(auditor_client):
    session = finished_session()
    MigrationControlFactory(
        session=session,
        entity_type="orders",
        state=EntityState.COMPLETED,
        new_count=7,
        modified_count=3,
        processed_count=9,
        failed_count=1,
    )
    html = auditor_client.get("/").content.decode()
    row = re.search(
        rf'<tr data-session="{session.migration_session_id}">(.*?)</tr>', html, re.S
    ).group(1)
    cells = [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]
    assert cells[1].split()[0] == "completed"
    assert cells[3:9] == ["10", "9", "1", "0", "0", "30 s"]


def test_dashboard_poll_returns_the_table_often_while_a_session_is_active(auditor_client):
    finished_session()
    response = auditor_client.get("/", **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="session-table"')
    assert "<html" not in html
    assert 'hx-trigger="every 15s"' in html
    running_session()
    response = auditor_client.get("/", **HTMX)
    assert 'hx-trigger="every 3s"' in response.content.decode()
    assert "HX-Request" in response["Vary"]


# -- launch: analyse, confirm, launch -------------------------------------------------------------


def test_analyze_shows_each_entity_and_the_confirmation(operator_client, clinic):
    response = operator_client.post(reverse("runs:analyze"), launch_data(), **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # the launch panel alone
    counts = clinic.source_counts()
    for entity in CLINIC:
        row = re.search(rf'<tr data-entity="{entity}">(.*?)</tr>', html, re.S).group(1)
        numbers = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)
        assert numbers == [str(counts[entity]), "0", "0", "0", "0", "100.0 %"]
        assert f'name="deletes_{entity}" value="0"' in html
    assert "No record is deleted." in html
    assert 'action="/launch/"' in html
    assert MigrationStatus.objects.count() == 0  # analysing launches nothing


def test_analyze_adds_the_entities_a_choice_depends_on(operator_client, clinic):
    html = operator_client.post(
        reverse("runs:analyze"), launch_data(["patient"]), **HTMX
    ).content.decode()
    assert re.findall(r'<tr data-entity="(\w+)">', html) == ["office", "doctor", "patient"]
    assert re.findall(r'name="entities" value="(\w+)"', html) == ["office", "doctor", "patient"]


def test_analyze_without_javascript_renders_the_whole_dashboard(operator_client, clinic):
    response = operator_client.post(reverse("runs:analyze"), launch_data())
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and "Recent sessions" in html and 'action="/launch/"' in html


def test_analyze_with_a_bad_batch_size_shows_the_error(operator_client, clinic):
    response = operator_client.post(reverse("runs:analyze"), launch_data(batch_size=0), **HTMX)
    assert response.status_code == 200
    assert "greater than or equal to 1" in response.content.decode()
    response = operator_client.post(reverse("runs:analyze"), launch_data(batch_size=0))
    assert response.status_code == 400


def test_launch_creates_the_session_submits_it_and_goes_to_its_page(
    operator_client, clinic, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as submitted:
        response = operator_client.post(reverse("runs:launch"), confirmed(mode="baseline"))
    session = MigrationStatus.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/sessions/{session.migration_session_id}/"
    assert len(submitted) == 1  # the executor starts it once the launch has committed
    assert session.launched_by == "operator"
    assert session.options["baseline"] is True
    assert session.options["batch_size"] == 100
    assert session.options["confirmed_deletes"] == dict.fromkeys(CLINIC, 0)
    execute_session(session_id=session.migration_session_id)
    session.refresh_from_db()
    assert session.overall_status == SessionStatus.COMPLETED
    page = operator_client.get(response["Location"]).content.decode()
    assert 'data-status="completed"' in page


def test_launch_without_the_analysis_is_refused_and_creates_nothing(operator_client, clinic):
    response = operator_client.post(reverse("runs:launch"), launch_data(CLINIC))
    assert response.status_code == 400
    assert "Analyse first" in response.content.decode()
    assert MigrationStatus.objects.count() == 0


def test_deletes_need_an_explicit_confirmation(operator_client, clinic):
    response = operator_client.post(reverse("runs:launch"), confirmed({"appointment": 3}))
    assert response.status_code == 400
    assert "confirm the deletes" in response.content.decode()
    assert MigrationStatus.objects.count() == 0


def test_analysis_says_so_when_the_run_deletes(operator_client, clinic):
    run_session(options=RunOptions(baseline=True))
    assert clinic.delete_appointments(3) == 3
    html = operator_client.post(reverse("runs:analyze"), launch_data(), **HTMX).content.decode()
    assert "This run deletes 3 records from the destination:" in html
    assert "appointment 3" in html
    assert 'name="deletes_appointment" value="3"' in html
    assert 'name="confirm_deletes" required' in html


def test_run_refuses_an_entity_whose_deletes_grew_after_the_confirmation(
    operator_client, clinic, django_capture_on_commit_callbacks
):
    run_session(options=RunOptions(baseline=True))
    clinic.delete_appointments(3)
    # The operator saw 3 deletes and confirmed them; then the source lost 2 more rows.
    clinic.delete_appointments(2)
    with django_capture_on_commit_callbacks():
        response = operator_client.post(
            reverse("runs:launch"), confirmed({"appointment": 3}, confirm_deletes="on")
        )
    assert response.status_code == 302
    session = MigrationStatus.objects.exclude(options__baseline=True).get()
    execute_session(session_id=session.migration_session_id)
    session.refresh_from_db()
    appointment = session.controls.get(entity_type="appointment")
    assert session.overall_status == SessionStatus.FAILED
    assert session.error_summary["refused"] == ["appointment"]
    assert appointment.state == EntityState.FAILED
    assert "delete 5 records but only 3 were confirmed" in appointment.message
    assert appointment.processed_count == 0
    # Nothing was deleted: every appointment the baseline wrote is still mapped.
    assert (
        RecordMap.objects.filter(entity_type="appointment", deleted_at__isnull=False).count() == 0
    )
    page = operator_client.get(response["Location"]).content.decode()
    assert "only 3 were confirmed" in page


def test_confirmed_deletes_run_when_the_source_did_not_change_again(
    operator_client, clinic, django_capture_on_commit_callbacks
):
    run_session(options=RunOptions(baseline=True))
    clinic.delete_appointments(3)
    with django_capture_on_commit_callbacks():
        operator_client.post(
            reverse("runs:launch"), confirmed({"appointment": 3}, confirm_deletes="on")
        )
    session = MigrationStatus.objects.exclude(options__baseline=True).get()
    session = execute_session(session_id=session.migration_session_id)
    assert session.overall_status == SessionStatus.COMPLETED
    assert (
        RecordMap.objects.filter(entity_type="appointment", deleted_at__isnull=False).count() == 3
    )


def test_launch_of_an_entity_already_running_names_the_running_session(operator_client, clinic):
    holder = launch_session(entities=["office"])
    response = operator_client.post(reverse("runs:launch"), confirmed())
    assert response.status_code == 409
    html = response.content.decode()
    assert f"already running in session {holder.migration_session_id}" in html
    assert f'href="/sessions/{holder.migration_session_id}/"' in html
    assert MigrationStatus.objects.count() == 1


@pytest.mark.parametrize("url_name", ["runs:analyze", "runs:launch"])
@pytest.mark.parametrize("persona", ["auditor_client", "editor_client"])
def test_only_launchers_may_analyse_or_launch(request, persona, url_name, clinic):
    response = request.getfixturevalue(persona).post(reverse(url_name), confirmed())
    assert response.status_code == 403
    assert MigrationStatus.objects.count() == 0


# -- the session page -----------------------------------------------------------------------------


def test_session_page_shows_progress_per_entity(auditor_client):
    session = running_session()
    response = auditor_client.get(reverse("runs:session", args=[session.migration_session_id]))
    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(r'<tr class="entity-row" data-entity="orders"(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r'<td class="num"[^>]*>(\d+)</td>', row) == ["100", "40", "5", "5", "50"]
    assert 'class="processed" width="40.0"' in row
    assert 'class="failed" x="40.0" width="5.0"' in row
    assert 'hx-trigger="every 1s"' in html
    assert "50.0 %" in html


def test_progress_poll_is_the_fragment_and_286_once_finished(auditor_client):
    session = running_session()
    url = reverse("runs:session", args=[session.migration_session_id])
    response = auditor_client.get(url, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="session-progress"')
    assert 'hx-trigger="every 1s"' in html
    MigrationStatus.objects.filter(pk=session.pk).update(
        overall_status=SessionStatus.COMPLETED, completed_at=timezone.now()
    )
    response = auditor_client.get(url, **HTMX)
    assert response.status_code == 286
    assert "hx-trigger" not in response.content.decode()
    assert 'data-status="completed"' in response.content.decode()


def test_unknown_session_is_404(auditor_client):
    assert auditor_client.get("/sessions/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_controls_show_only_for_those_who_control_runs(auditor_client, operator_client):
    session = running_session()
    url = reverse("runs:session", args=[session.migration_session_id])
    assert 'name="pause"' not in auditor_client.get(url).content.decode()
    html = operator_client.get(url).content.decode()
    assert 'name="pause"' in html and 'name="cancel"' in html and 'name="resume"' not in html


def test_throughput_chart_is_inline_svg_from_the_batch_entries(auditor_client):
    session = running_session()
    start = timezone.now() - dt.timedelta(seconds=9)
    for i, rate in enumerate([100.0, 300.0, 200.0]):
        MigrationExecutionLogFactory(
            session=session,
            operation_type=OperationType.CHECKPOINT_SAVE,
            timestamp=start + dt.timedelta(seconds=3 * i),
            performance_data={"rows": 50, "seconds": 0.25, "rows_per_s": rate},
        )
    html = auditor_client.get(reverse("runs:session", args=[session.migration_session_id]))
    html = html.content.decode()
    chart = re.search(r'<svg class="throughput".*?</svg>', html, re.S).group(0)
    points = re.search(r'<polyline class="line" points="([^"]+)"', chart).group(1).split()
    # x from the left edge (48) to the right (708); the y axis tops at 500 rows/s.
    assert points == ["48.0,126.8", "378.0,68.4", "708.0,97.6"]
    assert ">500<" in chart
    assert "3 batches · mean 200.0 · peak 300.0" in html


def test_throughput_chart_averages_many_batches_into_few_points(db):
    session = running_session()
    start = timezone.now()
    for i in range(40):
        MigrationExecutionLogFactory(
            session=session,
            operation_type=OperationType.CHECKPOINT_SAVE,
            timestamp=start + dt.timedelta(seconds=i),
            performance_data={"rows_per_s": 10.0 * i},
        )
    chart = throughput_chart(session_id=session.migration_session_id, max_points=10)
    assert chart.batches == 40
    assert [len(line.split()) for line, _ in chart.segments] == [10]
    assert chart.peak == 390.0


def test_throughput_chart_breaks_its_line_across_a_pause(db):
    session = running_session()
    start = timezone.now()
    for second in (0, 1, 2, 30, 31, 32):
        MigrationExecutionLogFactory(
            session=session,
            operation_type=OperationType.CHECKPOINT_SAVE,
            timestamp=start + dt.timedelta(seconds=second),
            performance_data={"rows_per_s": 100.0},
        )
    chart = throughput_chart(session_id=session.migration_session_id)
    assert [len(line.split()) for line, _ in chart.segments] == [3, 3]


def test_durations_read_as_people_say_them():
    assert format_duration(dt.timedelta(seconds=42)) == "42 s"
    assert format_duration(dt.timedelta(seconds=185)) == "3 min 05 s"
    assert format_duration(dt.timedelta(hours=2, minutes=7)) == "2 h 07 min"
    assert format_duration(None) == ""


# -- the log panel --------------------------------------------------------------------------------


def test_log_returns_only_entries_after_the_given_id(auditor_client):
    session = running_session()
    entries = [MigrationExecutionLogFactory(session=session) for _ in range(5)]
    MigrationExecutionLogFactory()  # another session's entry
    url = reverse("runs:session_log", args=[session.migration_session_id])
    response = auditor_client.get(url, {"after": entries[1].id}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert [int(i) for i in re.findall(r'data-id="(\d+)"', html)] == [e.id for e in entries[2:]]
    assert f'id="log-after" name="after" value="{entries[-1].id}" hx-swap-oob="true"' in html
    # Nothing new: no entry, and the panel keeps its last id.
    response = auditor_client.get(url, {"after": entries[-1].id}, **HTMX)
    assert re.findall(r'data-id="(\d+)"', response.content.decode()) == []
    assert f'value="{entries[-1].id}"' in response.content.decode()


def test_log_page_shows_the_tail_and_the_panel_asks_after_its_last_id(auditor_client):
    session = running_session()
    entries = [MigrationExecutionLogFactory(session=session) for _ in range(3)]
    html = auditor_client.get(
        reverse("runs:session", args=[session.migration_session_id])
    ).content.decode()
    assert [int(i) for i in re.findall(r'data-id="(\d+)"', html)] == [e.id for e in entries]
    assert f'<input type="hidden" id="log-after" name="after" value="{entries[-1].id}">' in html
    assert 'hx-include="#log-after"' in html and 'hx-swap="beforeend"' in html


def test_log_polling_stops_with_286_once_the_session_is_finished(auditor_client):
    session = finished_session(ago=60)
    url = reverse("runs:session_log", args=[session.migration_session_id])
    assert auditor_client.get(url, {"after": 0}, **HTMX).status_code == 286
    recent = finished_session(ago=0)  # may still write its closing entries
    url = reverse("runs:session_log", args=[recent.migration_session_id])
    assert auditor_client.get(url, {"after": 0}, **HTMX).status_code == 200


def test_log_without_javascript_is_a_page_with_a_next_link(auditor_client):
    session = running_session()
    entries = [MigrationExecutionLogFactory(session=session) for _ in range(3)]
    url = reverse("runs:session_log", args=[session.migration_session_id])
    response = auditor_client.get(url, {"after": entries[0].id})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html
    assert [int(i) for i in re.findall(r'data-id="(\d+)"', html)] == [e.id for e in entries[1:]]
    assert f'href="?after={entries[-1].id}&amp;level=info"' in html


@pytest.mark.parametrize("after", ["x", "-1"])
def test_log_refuses_a_bad_after(auditor_client, after):
    session = running_session()
    url = reverse("runs:session_log", args=[session.migration_session_id])
    assert auditor_client.get(url, {"after": after}).status_code == 400


# -- pause / resume / cancel ----------------------------------------------------------------------


def _post(client: Client, name: str, session: MigrationStatus, **headers):
    return client.post(reverse(f"runs:{name}", args=[session.migration_session_id]), **headers)


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
@pytest.mark.parametrize("persona", ["auditor_client", "editor_client"])
def test_controls_are_refused_without_control_permission(request, persona, action):
    session = running_session()
    before = MigrationStatus.objects.values().get(pk=session.pk)
    response = _post(request.getfixturevalue(persona), action, session)
    assert response.status_code == 403
    assert MigrationStatus.objects.values().get(pk=session.pk) == before


def test_pause_by_htmx_returns_the_progress_with_the_new_state(operator_client, operator):
    session = running_session()
    response = _post(operator_client, "pause", session, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="session-progress"')
    # Nothing executes it (no fresh lease), so it pauses at once.
    session.refresh_from_db()
    assert session.overall_status == SessionStatus.PAUSED
    assert 'data-status="paused"' in html
    assert 'name="resume"' in html and 'name="pause"' not in html
    # The audit trail says who asked for it.
    requested = MigrationExecutionLog.objects.filter(
        session=session, action=AuditAction.SESSION_PAUSE_REQUESTED
    )
    assert list(requested.values_list("actor", flat=True)) == [operator.username]


def test_resume_moves_a_paused_session_to_running_and_submits_it(
    operator_client, django_capture_on_commit_callbacks
):
    session = running_session()
    _post(operator_client, "pause", session)
    with django_capture_on_commit_callbacks() as submitted:
        response = _post(operator_client, "resume", session, **HTMX)
    assert response.status_code == 200
    assert len(submitted) == 1
    session.refresh_from_db()
    assert session.overall_status == SessionStatus.RUNNING
    assert MigrationControl.objects.get(session=session).state == EntityState.PENDING
    # The log panel's polling restarts out of band.
    assert 'id="log-poller"' in response.content.decode()
    assert 'hx-swap-oob="true"' in response.content.decode()


def test_cancel_without_javascript_redirects_back_with_a_message(operator_client):
    session = running_session()
    response = _post(operator_client, "cancel", session)
    assert response.status_code == 302
    assert response["Location"] == f"/sessions/{session.migration_session_id}/"
    session.refresh_from_db()
    assert session.overall_status == SessionStatus.CANCELLED
    page = operator_client.get(response["Location"]).content.decode()
    assert "Cancel requested" in page


def test_a_refused_control_says_why_and_changes_nothing(operator_client):
    session = finished_session()
    response = _post(operator_client, "pause", session, **HTMX)
    assert response.status_code == 200
    assert "only a running session can be paused" in response.content.decode()
    response = _post(operator_client, "pause", session)
    assert response.status_code == 302
    assert (
        "only a running session can be paused"
        in operator_client.get(response["Location"]).content.decode()
    )
    session.refresh_from_db()
    assert session.overall_status == SessionStatus.COMPLETED
    assert session.pause_requested_at is None


def test_controls_need_a_csrf_token(operator):
    session = running_session()
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert _post(client, "pause", session).status_code == 403
    session.refresh_from_db()
    assert session.overall_status == SessionStatus.RUNNING
