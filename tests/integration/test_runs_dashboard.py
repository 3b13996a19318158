"""The dashboard of the migration: one row per entity, failures that show, readable numbers.

A real baseline of the SQLite clinic (whose planted bad rows end in quarantine) gives a
session that completes with failed records; the pages and ``diffmig status`` must say so.
Other states are made with factories, each assertion on what the page shows.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from migrationsapp.models import (
    MigrationExecutionLog,
    QuarantinedRecord,
    RecordMap,
    RunSchedule,
    SchemaMappingDefinition,
    VerifyEntityReport,
    VerifyRun,
)
from migrationsapp.models.choices import EntityState, LogLevel, OperationType, SessionStatus
from migrationsapp.selectors.dashboard import entity_rows
from migrationsapp.services.runs import RunOptions, execute_session, launch_session
from tests.factories import (
    MigrationControlFactory,
    MigrationExecutionLogFactory,
    MigrationStatusFactory,
    QuarantinedRecordFactory,
)
from tests.integration.conftest import cli
from tests.support.reliability import record
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


@pytest.fixture
def baseline(clinic):
    """The clinic's baseline, run to its end: completed, some records quarantined."""
    session = launch_session(options=RunOptions(baseline=True, batch_size=50), user="operator")
    return execute_session(session_id=session.migration_session_id)


def entity_row(html: str, entity: str) -> str:
    found = re.search(rf'<tr data-entity="{entity}"[^>]*>(.*?)</tr>', html, re.S)
    assert found, f"no dashboard row for {entity}"
    return found.group(1)


def cell(row: str, name: str) -> str:
    found = re.search(rf'<td[^>]*data-cell="{name}"[^>]*>(.*?)</td>', row, re.S)
    assert found, f"no {name} cell"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


# -- one row per entity ---------------------------------------------------------------------------


def test_dashboard_has_a_row_per_entity_with_its_migrated_and_quarantined_counts(
    auditor_client, baseline
):
    html = auditor_client.get("/").content.decode()
    assert re.findall(r'<tr data-entity="(\w+)"', html) == CLINIC
    for entity in CLINIC:
        row = entity_row(html, entity)
        migrated = RecordMap.objects.filter(entity_type=entity, deleted_at__isnull=True).count()
        open_entries = QuarantinedRecord.objects.filter(
            entity_type=entity, resolved_at__isnull=True
        ).count()
        control = baseline.controls.get(entity_type=entity)
        assert migrated == control.processed_count and open_entries == control.failed_count > 0
        assert cell(row, "migrated") == str(migrated)
        assert cell(row, "quarantine") == f"{open_entries} open"
        assert f'href="/audit/quarantine/?entity={entity}"' in row
        assert cell(row, "last-run").startswith(f"completed with {control.failed_count} failed")
        assert f"{control.processed_count} written" in cell(row, "last-run")
        assert f'href="/sessions/{baseline.migration_session_id}/"' in row
        assert cell(row, "last-verify") == "never"
        assert cell(row, "next-run") == "—"
        records = "record" if control.failed_count == 1 else "records"
        assert cell(row, "attention") == f"{control.failed_count} {records} failed in the last run"
    assert "Runs execute in the web process (no job queue)" in html


def test_entity_row_reads_the_newest_run_and_the_newest_finished_verification(
    clinic, django_assert_max_num_queries
):
    now = timezone.now()
    old = MigrationStatusFactory(overall_status=SessionStatus.COMPLETED)
    MigrationControlFactory(
        session=old, entity_type="office", state=EntityState.COMPLETED, new_count=5
    )
    newer = MigrationStatusFactory(overall_status=SessionStatus.FAILED)
    MigrationControlFactory(
        session=newer,
        entity_type="office",
        state=EntityState.FAILED,
        modified_count=2,
        message="refused: 3 deletes exceed max_delete_share 0.05",
    )
    first = VerifyRun.objects.create(state="mismatch", finished_at=now - dt.timedelta(hours=2))
    VerifyEntityReport.objects.create(run=first, entity_type="office", missing=1, extra=2)
    second = VerifyRun.objects.create(state="equal", finished_at=now - dt.timedelta(hours=1))
    VerifyEntityReport.objects.create(run=second, entity_type="office", equal=True)
    VerifyRun.objects.create(state="running")  # not finished: not the last verification
    RunSchedule.objects.create(
        name="nightly", interval_hours=24, next_run_at=now + dt.timedelta(hours=3)
    )
    RunSchedule.objects.create(
        name="doctors", entities=["doctor"], interval_hours=1, next_run_at=now + dt.timedelta(1)
    )
    RunSchedule.objects.create(
        name="paused", interval_hours=1, paused=True, next_run_at=now + dt.timedelta(minutes=5)
    )

    with django_assert_max_num_queries(12):  # grouped by entity: never a query per row
        rows = {row.entity: row for row in entity_rows()}

    office = rows["office"]
    assert office.last_run.session_id == newer.migration_session_id
    assert (office.last_run.state, office.last_run.changes) == ("failed", 2)
    assert office.attention == "refused: 3 deletes exceed max_delete_share 0.05"
    assert office.last_verify.run_id == second.id and office.last_verify.differences == 0
    assert office.next_run.schedule == "nightly"
    assert re.fullmatch(r"in (2 h 59|3 h 00) min", office.next_run.until)
    assert re.fullmatch(r"(59 min \d\d s|1 h 00 min) ago", office.last_verify.ago)
    assert rows["doctor"].next_run.schedule == "nightly"  # the sooner of the two
    assert rows["patient"].last_run is None and rows["patient"].last_verify is None


def test_the_entity_panel_refreshes_itself_alone(auditor_client, clinic):
    response = auditor_client.get("/", {"panel": "entities"}, **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<section class="card entity-health" id="entity-health"')
    assert 'hx-get="/?panel=entities" hx-trigger="every 15s"' in html
    assert re.findall(r'<tr data-entity="(\w+)"', html) == CLINIC


def test_a_dashboard_without_mappings_says_so_and_links_the_import(editor_client, operator_client):
    html = editor_client.get("/").content.decode()
    assert "No entity has an active mapping yet." in html
    assert 'href="/mappings/import/"' in html
    html = operator_client.get("/").content.decode()
    assert 'href="/mappings/"' in html and 'href="/mappings/import/"' not in html
    button = re.search(r'<button type="submit" class="primary" name="analyze"[^>]*>', html)
    assert "disabled" in button.group(0)
    assert "No entity has an active mapping: import a mapping file first." in html


def test_a_worker_state_names_a_missing_worker(auditor_client, clinic, settings):
    down = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.REDIS_URL = down
    settings.RQ_QUEUES = {name: {"URL": down} for name in settings.DIFFMIG_QUEUES}
    html = auditor_client.get("/", {"panel": "entities"}, **HTMX).content.decode()
    state = re.search(r'<p class="worker-state (\w+)" id="worker-state">(.*?)</p>', html, re.S)
    assert state.group(1) == "warn"
    assert "The job queue is unreachable" in state.group(2)


# -- failures that show ---------------------------------------------------------------------------


def test_completed_with_failed_records_shows_in_every_place(auditor_client, baseline):
    failed = sum(c.failed_count for c in baseline.controls.all())
    assert baseline.overall_status == SessionStatus.COMPLETED and failed > 0
    label = f"completed with {failed} failed"
    table = auditor_client.get("/", **HTMX).content.decode()
    row = re.search(
        rf'<tr data-session="{baseline.migration_session_id}">(.*?)</tr>', table, re.S
    ).group(1)
    badge = f'class="badge completed with-failed" data-status="completed" data-failed="{failed}"'
    assert badge in row and label in row
    page = auditor_client.get(reverse("runs:session", args=[baseline.migration_session_id]))
    html = page.content.decode()
    assert re.search(r'id="session-status">\s*<span class="badge completed with-failed"', html)
    assert label in html
    assert "100.0 %" in html  # completed: done, failed records and all
    # The Failed tile leads to this session's quarantine, which lists exactly its entries.
    link = f'href="/audit/quarantine/?session={baseline.migration_session_id}"'
    tile = f'{link} title="This session\'s records in quarantine">{failed} <span class="small">'
    assert tile + "in quarantine</span></a>" in html
    quarantine = auditor_client.get(
        "/audit/quarantine/", {"session": str(baseline.migration_session_id)}
    ).content.decode()
    assert f"session {str(baseline.migration_session_id)[:8]}</a> refused" in quarantine
    export = auditor_client.get(
        "/audit/quarantine.csv", {"session": str(baseline.migration_session_id)}
    )
    assert len(b"".join(export.streaming_content).decode().splitlines()) == failed + 1
    # diffmig status says it too; its --json keeps the state exactly "completed".
    result = cli("status", str(baseline.migration_session_id))
    assert result.code == 0
    assert result.out.startswith(f"session {baseline.migration_session_id}: {label}  processed")
    assert "rows/s overall" in result.out
    document = cli("status", str(baseline.migration_session_id), "--json")
    assert '"status": "completed"' in document.out


def test_quarantine_filtered_by_session_lists_only_what_it_refused(auditor_client):
    one, other = MigrationStatusFactory(), MigrationStatusFactory()
    mine = [QuarantinedRecordFactory(entity_type="doctor", last_session=one) for _ in range(3)]
    QuarantinedRecordFactory(entity_type="doctor", last_session=other)
    response = auditor_client.get(
        "/audit/quarantine.csv", {"session": str(one.migration_session_id)}
    )
    body = b"".join(response.streaming_content).decode()
    keys = sorted(line.split(",")[2] for line in body.splitlines()[1:])
    assert keys == sorted(entry.legacy_key_text for entry in mine)
    bad = auditor_client.get("/audit/quarantine/", {"session": "nope"})
    assert bad.status_code == 200 and "Enter a valid UUID." in bad.content.decode()


def test_a_failed_session_never_reads_done_and_its_row_says_why(auditor_client):
    session = MigrationStatusFactory(
        overall_status=SessionStatus.FAILED,
        started_at=timezone.now() - dt.timedelta(minutes=2),
        completed_at=timezone.now(),
        error_summary={"entities": {"orders": "source unreachable: connection refused"}},
    )
    MigrationControlFactory(
        session=session,
        entity_type="orders",
        state=EntityState.FAILED,
        new_count=10,
        processed_count=10,
    )
    html = auditor_client.get(
        reverse("runs:session", args=[session.migration_session_id])
    ).content.decode()
    done = re.search(r'<div id="stat-done">(.*?)</div>', html, re.S).group(1)
    assert "100" not in done and "%" not in done
    assert "failed" in done and "10 of 10 counted changes handled" in done
    table = auditor_client.get("/", **HTMX).content.decode()
    row = re.search(rf'<tr data-session="{session.migration_session_id}">(.*?)</tr>', table, re.S)
    assert "orders: source unreachable: connection refused" in row.group(1)


# -- launch: disabled with the reason, errors that link ------------------------------------------


def test_busy_entities_cannot_be_ticked_and_name_the_session_that_holds_them(
    operator_client, clinic
):
    holder = launch_session(entities=["doctor"])  # doctor and office, which it depends on
    html = operator_client.get("/").content.decode()
    link = f'<a href="/sessions/{holder.migration_session_id}/">session'
    for entity in ("office", "doctor"):
        box = re.search(rf'<input type="checkbox" name="entities" value="{entity}"[^>]*>', html)
        assert "disabled" in box.group(0)
    for entity in ("patient", "appointment"):  # they depend on doctor: busy through it
        label = re.search(rf'value="{entity}".*?</label>', html, re.S).group(0)
        assert "disabled" in label and "busy: doctor runs in" in label and link in label
    assert "Every entity is busy in a running session" in html
    assert re.search(r'name="analyze" disabled', html)


def test_the_confirmation_refuses_a_launch_once_an_entity_became_busy(operator_client, clinic):
    data = {"entities": [], "mode": "differential", "batch_size": 100}
    analysed = operator_client.post(reverse("runs:analyze"), data, **HTMX).content.decode()
    assert re.search(r'name="launch"\s*>', analysed)  # free: the button is enabled
    holder = launch_session(entities=["office"])
    analysed = operator_client.post(reverse("runs:analyze"), data, **HTMX).content.decode()
    assert re.search(r'name="launch" disabled aria-describedby="launch-reason"', analysed)
    assert (
        f'office is busy: it runs in <a href="/sessions/{holder.migration_session_id}/">'
        in analysed
    )


def test_a_baseline_analysis_counts_what_it_will_write(operator_client, clinic):
    data = {"entities": [], "mode": "baseline", "batch_size": 100}
    html = operator_client.post(reverse("runs:analyze"), data, **HTMX).content.decode()
    total = sum(clinic.source_counts().values())
    assert f"<h2>Analysis: the baseline writes {total} records</h2>" in html
    differential = {**data, "mode": "differential"}
    html = operator_client.post(reverse("runs:analyze"), differential, **HTMX).content.decode()
    assert f"<h2>Analysis: {total} changes in {total} source records</h2>" in html


# -- numbers and logs people can read -------------------------------------------------------------


def running(status=SessionStatus.RUNNING):
    session = MigrationStatusFactory(
        overall_status=status,
        started_at=timezone.now() - dt.timedelta(seconds=100),
        options={"entities": ["orders"]},
    )
    MigrationControlFactory(
        session=session,
        entity_type="orders",
        state=EntityState.RUNNING if status == SessionStatus.RUNNING else EntityState.PAUSED,
        new_count=1000,
        processed_count=500,
    )
    return session


def test_eta_is_a_duration_while_running_and_hidden_while_paused(auditor_client):
    session = running()
    url = reverse("runs:session", args=[session.migration_session_id])
    html = auditor_client.get(url).content.decode()
    eta = re.search(r'<dd id="stat-eta">(.*?)</dd>', html, re.S).group(1)
    # 500 rows in 100 s: 5 rows/s overall, 500 rows left, about 100 s.
    assert re.search(r">1 min (3\d|40) s</time>", eta), eta
    assert "Rows/s overall" in html
    assert re.search(r'<dd id="stat-rate">5\.0</dd>', html)
    session.overall_status = SessionStatus.PAUSED
    session.save(update_fields=["overall_status"])
    html = auditor_client.get(url).content.decode()
    eta = re.search(r'<dd id="stat-eta">(.*?)</dd>', html, re.S).group(1)
    assert "paused" in eta and "<time" not in eta
    assert '"eta": null' in cli("status", str(session.migration_session_id), "--json").out


def test_batch_lines_are_debug_and_log_pages_default_to_info(auditor_client, baseline):
    batches = MigrationExecutionLog.objects.filter(
        session=baseline, operation_type=OperationType.CHECKPOINT_SAVE, message__contains="batch of"
    )
    assert batches.exists()
    assert set(batches.values_list("log_level", flat=True)) == {LogLevel.DEBUG}
    assert all("rows/s in this batch" in m for m in batches.values_list("message", flat=True))
    at_info = MigrationExecutionLog.objects.filter(session=baseline).exclude(
        log_level=LogLevel.DEBUG
    )
    assert at_info.filter(log_level=LogLevel.WARN).exists() and at_info.count() < 200
    url = reverse("runs:session", args=[baseline.migration_session_id])
    panel = auditor_client.get(url).content.decode()
    assert "rows/s in this batch" not in panel and 'class="log-line debug"' not in panel
    whole = reverse("runs:session_log", args=[baseline.migration_session_id])
    html = auditor_client.get(whole).content.decode()
    shown = [int(i) for i in re.findall(r'data-id="(\d+)"', html)]
    assert shown == list(at_info.order_by("id").values_list("id", flat=True))
    assert '<option value="info" selected>info and above</option>' in html
    html = auditor_client.get(whole, {"level": "debug"}).content.decode()
    assert "rows/s in this batch" in html
    html = auditor_client.get(whole, {"level": "WARNING"}).content.decode()
    levels = set(re.findall(r'class="log-line (\w+)"', html))
    assert levels and levels <= {"warn", "error"}
    assert auditor_client.get(whole, {"level": "loud"}).status_code == 400
    # The audit log page: INFO and up unless asked.
    html = auditor_client.get("/audit/logs/", {"session": str(baseline.migration_session_id)})
    assert "rows/s in this batch" not in html.content.decode()


def test_the_log_poll_of_a_session_skips_debug_entries(auditor_client):
    session = running()
    info = MigrationExecutionLogFactory(session=session)
    MigrationExecutionLogFactory(session=session, log_level=LogLevel.DEBUG)
    warn = MigrationExecutionLogFactory(session=session, log_level=LogLevel.WARN)
    url = reverse("runs:session_log", args=[session.migration_session_id])
    html = auditor_client.get(url, {"after": 0}, **HTMX).content.decode()
    assert [int(i) for i in re.findall(r'data-id="(\d+)"', html)] == [info.id, warn.id]


def test_preview_shows_values_as_they_will_be_written_not_localised(auditor_client, clinic):
    office = SchemaMappingDefinition.objects.get(entity_type="office", is_active=True)
    html = auditor_client.get(
        reverse("mappings:preview", args=[office.pk]), {"limit": "5"}
    ).content.decode()
    opened = re.findall(r"<dt[^>]*>opened_on</dt><dd[^>]*>([^<]*)", html)
    assert opened and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}|null", v.strip()) for v in opened)
    assert any(v.strip() != "null" for v in opened)


HOSTILE_LEVELS = ["loud", "info'--", "<script>alert(1)</script>", "é" * 300, "debug\x00", "10"]
HOSTILE_SESSIONS = ["nope", "' OR 1=1 --", "0" * 33, "<b>x</b>", "%00"]


def test_hostile_level_and_session_filters_are_refused_with_a_reason(auditor_client):
    session = running()
    whole = reverse("runs:session_log", args=[session.migration_session_id])
    held = 0
    for level in HOSTILE_LEVELS:
        response = auditor_client.get(whole, {"level": level})
        assert response.status_code == 400
        assert response.content.decode().startswith("unknown level ")
        held += 1
    for value in HOSTILE_SESSIONS:
        response = auditor_client.get("/audit/quarantine/", {"session": value})
        assert response.status_code == 200
        html = response.content.decode()
        assert "Enter a valid UUID." in html and "<b>x</b>" not in html
        held += 1
    record(
        "web",
        "hostile level and session filters on the log and quarantine pages",
        tried=len(HOSTILE_LEVELS) + len(HOSTILE_SESSIONS),
        held=held,
        outcome="refused with a one-line reason, never a 500 nor the text echoed unescaped",
    )
