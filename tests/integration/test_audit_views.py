"""The audit pages: session history, execution log and its CSV, record lookup, quarantine.

Django's test client against the control database (PostgreSQL, or SQLite on the embedded
default). Lists are checked row for row across keyset pages, and checked never to COUNT or
OFFSET; the quarantine actions are checked for their state change, their log entry, their
refusals, and for what the next analysis does with the record.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from migrationsapp.models import (
    MigrationExecutionLog,
    MigrationStatus,
    QuarantinedRecord,
    RecordEvent,
    RecordMap,
)
from migrationsapp.models.choices import (
    AuditAction,
    EntityState,
    LogLevel,
    OperationType,
    RecordAction,
    SessionStatus,
)
from migrationsapp.selectors.history import PAGE_SIZE
from migrationsapp.services.analysis import analyze_entities
from tests.factories import (
    MigrationControlFactory,
    MigrationExecutionLogFactory,
    MigrationStatusFactory,
    QuarantinedRecordFactory,
    RecordEventFactory,
    RecordMapFactory,
    SchemaMappingDefinitionFactory,
    UserFactory,
)
from tests.support.people import ENTITY, run

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

DONE = EntityState.COMPLETED
READ_PAGES = ["history", "logs", "logs_csv", "lookup", "quarantine"]


def url(name: str, *args) -> str:
    return reverse(f"audit:{name}", args=args)


def html(response) -> str:
    return response.content.decode()


def no_count_or_offset(queries, *, bounded_counts: bool = False) -> None:
    """No OFFSET and no COUNT; with ``bounded_counts``, a COUNT only over a LIMITed subquery
    (the quarantine's groups) or over the keys of the rows shown (their dependants)."""
    for query in queries:
        sql = query["sql"].upper()
        if bounded_counts and "COUNT(" in sql:
            assert "LIMIT" in sql or '"VALUE" IN (' in sql, sql
        else:
            assert "COUNT(" not in sql, sql
        assert "OFFSET" not in sql, sql


def follow_pages(
    client: Client, address: str, pattern: str, *, bounded_counts: bool = False
) -> list[list[str]]:
    """Every page of a list, following its "Next page" links; the ids matched on each."""
    pages = []
    while address:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(address)
        assert response.status_code == 200
        no_count_or_offset(queries.captured_queries, bounded_counts=bounded_counts)
        text = html(response)
        pages.append(re.findall(pattern, text))
        found = re.search(r'<a href="([^"]+)"[^>]*rel="next"', text)
        address = found.group(1).replace("&amp;", "&") if found else ""
        if address.startswith("?"):
            address = response.request["PATH_INFO"] + address
    return pages


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize("name", READ_PAGES)
def test_anonymous_is_sent_to_the_login_page(client, name):
    response = client.get(url(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["quarantine_retry", "quarantine_resolve"])
def test_anonymous_action_is_sent_to_the_login_page_and_changes_nothing(client, name):
    entry = QuarantinedRecordFactory(content_hash="a" * 64)
    response = client.post(url(name, entry.pk))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    entry.refresh_from_db()
    assert (entry.content_hash, entry.resolved_at) == ("a" * 64, None)


@pytest.mark.parametrize("persona", ["auditor_client", "operator_client", "editor_client"])
@pytest.mark.parametrize("name", READ_PAGES)
def test_every_role_reads_every_audit_page(request, persona, name):
    assert request.getfixturevalue(persona).get(url(name)).status_code == 200


@pytest.mark.parametrize("name", READ_PAGES)
def test_a_user_in_no_role_is_refused(name):
    client = Client()
    client.force_login(UserFactory(username="nobody"))
    assert client.get(url(name)).status_code == 403


def test_a_user_in_no_role_gets_a_403_page_that_says_which_roles_open_it():
    client = Client()
    client.force_login(UserFactory(username="nobody"))
    response = client.get(url("history"))
    assert response.status_code == 403
    text = html(response)
    assert "This needs one of the roles auditors, operators or mapping editors." in text
    assert "signed in as <strong>nobody</strong>,\n    in no group" in text
    assert 'class="main-nav"' in text and 'href="/"' in text


def test_an_auditor_refused_an_operator_action_is_told_the_role_and_keeps_the_navigation(
    auditor_client,
):
    entry = QuarantinedRecordFactory(content_hash="a" * 64)
    response = auditor_client.post(url("quarantine_retry", entry.pk))
    assert response.status_code == 403
    text = html(response)
    assert "<h1>Your role does not allow this</h1>" in text
    assert "This needs the operators role. Ask an administrator to add you to that group." in text
    assert "in the group <em>auditors</em>" in text
    for page in ("history", "logs", "lookup", "quarantine"):
        assert f'href="{url(page)}"' in text


# --------------------------------------------------------------------------- session history


def test_history_filters_by_status_entity_and_date_range(auditor_client):
    day = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
    wanted = MigrationStatusFactory(overall_status=SessionStatus.COMPLETED)
    MigrationControlFactory(session=wanted, entity_type="doctor", state=DONE)
    other_entity = MigrationStatusFactory(overall_status=SessionStatus.COMPLETED)
    MigrationControlFactory(session=other_entity, entity_type="office", state=DONE)
    other_status = MigrationStatusFactory(overall_status=SessionStatus.FAILED)
    MigrationControlFactory(session=other_status, entity_type="doctor", state=DONE)
    too_early = MigrationStatusFactory(overall_status=SessionStatus.COMPLETED)
    MigrationControlFactory(session=too_early, entity_type="doctor", state=DONE)
    for session, when in [
        (wanted, day),
        (other_entity, day),
        (other_status, day),
        (too_early, day - dt.timedelta(days=2)),
    ]:
        MigrationStatus.objects.filter(pk=session.pk).update(created_at=when)

    response = auditor_client.get(
        url("history"),
        {"status": "completed", "entity": "doctor", "since": "2026-03-09", "until": "2026-03-10"},
    )

    shown = re.findall(r'href="/sessions/([0-9a-f-]{36})/"', html(response))
    assert shown == [str(wanted.migration_session_id)]
    assert reverse("runs:session", args=[wanted.migration_session_id]) in html(response)


def test_history_pages_by_keyset_newest_first_even_when_times_tie(auditor_client):
    sessions = [MigrationStatusFactory() for _ in range(PAGE_SIZE + 7)]
    base = timezone.now() - dt.timedelta(days=1)
    # Ten sessions share one created_at across the page boundary: the id breaks the tie.
    for position, session in enumerate(sessions):
        when = base if 40 <= position < 60 else base + dt.timedelta(seconds=position)
        MigrationStatus.objects.filter(pk=session.pk).update(created_at=when)
    expected = [
        str(s.migration_session_id) for s in MigrationStatus.objects.order_by("-created_at", "-id")
    ]

    pages = follow_pages(auditor_client, url("history"), r'href="/sessions/([0-9a-f-]{36})/"')

    assert [len(p) for p in pages] == [PAGE_SIZE, 7]
    assert pages[0] + pages[1] == expected


def test_history_refuses_a_page_cursor_it_did_not_write(auditor_client):
    response = auditor_client.get(url("history"), {"after": "not-a-cursor"})
    assert response.status_code == 400
    assert "bad page cursor" in html(response)


def test_history_answers_htmx_with_the_results_fragment_only(auditor_client):
    MigrationStatusFactory()
    response = auditor_client.get(url("history"), HTTP_HX_REQUEST="true")
    text = html(response)
    assert text.lstrip().startswith('<section class="card" id="results">')
    assert "<html" not in text
    assert "HX-Request" in response["Vary"]


def test_history_shows_failed_duration_and_rows_per_second(auditor_client):
    start = timezone.now() - dt.timedelta(hours=1)
    done = MigrationStatusFactory(
        overall_status=SessionStatus.COMPLETED,
        started_at=start,
        completed_at=start + dt.timedelta(seconds=100),
    )
    MigrationControlFactory(
        session=done, entity_type="office", state=DONE, processed_count=300, failed_count=2
    )
    MigrationControlFactory(
        session=done, entity_type="doctor", state=DONE, processed_count=200, failed_count=1
    )
    never = MigrationStatusFactory(overall_status=SessionStatus.CANCELLED)
    MigrationControlFactory(session=never, entity_type="office", state=EntityState.CANCELLED)

    text = html(auditor_client.get(url("history")))

    row = re.search(rf'<tr data-session="{done.migration_session_id}".*?</tr>', text, re.S)
    cells = dict(re.findall(r'<td class="num (\w+)[^"]*">([^<]*)</td>', row.group(0)))
    assert cells == {"processed": "500", "failed": "3", "duration": "1 min 40 s", "rate": "5.0"}
    assert "with 3 failed" in row.group(0)
    row = re.search(rf'<tr data-session="{never.migration_session_id}".*?</tr>', text, re.S)
    cells = dict(re.findall(r'<td class="num (\w+)[^"]*">([^<]*)</td>', row.group(0)))
    dash = "\u2013"
    assert cells == {"processed": "0", "failed": "0", "duration": dash, "rate": dash}


def test_history_filters_the_sessions_that_completed_with_failed_records(auditor_client):
    with_failures = MigrationStatusFactory(overall_status=SessionStatus.COMPLETED)
    MigrationControlFactory(session=with_failures, entity_type="doctor", state=DONE, failed_count=4)
    MigrationControlFactory(session=with_failures, entity_type="office", state=DONE)
    clean = MigrationStatusFactory(overall_status=SessionStatus.COMPLETED)
    MigrationControlFactory(session=clean, entity_type="doctor", state=DONE)
    failed = MigrationStatusFactory(overall_status=SessionStatus.FAILED)
    MigrationControlFactory(
        session=failed, entity_type="doctor", state=EntityState.FAILED, failed_count=1
    )

    def shown(params) -> list[str]:
        text = html(auditor_client.get(url("history"), params))
        return re.findall(r'<tr data-session="([0-9a-f-]{36})"', text)

    assert shown({"status": "completed_with_failures"}) == [str(with_failures.migration_session_id)]
    assert shown({"status": "completed_with_failures", "entity": "office"}) == [
        str(with_failures.migration_session_id)
    ]
    assert shown({"status": "failed", "entity": "doctor"}) == [str(failed.migration_session_id)]


# --------------------------------------------------------------------------- execution log


@pytest.fixture
def log_set(db):
    """Entries across two sessions, entities, levels, operations, actions and actors."""
    first, second = MigrationStatusFactory(), MigrationStatusFactory()
    paused = dict(action=AuditAction.SESSION_PAUSE_REQUESTED)
    failed = dict(action=AuditAction.RECORD_FAILED)
    rows = {
        "a": dict(session=first, entity_type="doctor", log_level=LogLevel.INFO, **paused),
        "b": dict(
            session=first, entity_type="doctor", log_level=LogLevel.WARN, record_id="7/1", **failed
        ),
        "c": dict(
            session=first, entity_type="doctor", log_level=LogLevel.ERROR, record_id="7/1", **failed
        ),
        "d": dict(session=second, entity_type="doctor", log_level=LogLevel.ERROR, record_id="8"),
        "e": dict(session=second, entity_type="office", log_level=LogLevel.WARN, **paused),
        "f": dict(
            session=second,
            entity_type="doctor",
            log_level=LogLevel.WARN,
            operation_type=OperationType.VALIDATION,
            action=AuditAction.QUARANTINE_RESOLVED,
        ),
        "g": dict(session=first, entity_type="doctor", log_level=LogLevel.DEBUG),
    }
    actors = {"a": "alice", "e": "bob", "f": "alice"}
    entries = {
        name: MigrationExecutionLogFactory(
            message=f"entry {name}", actor=actors.get(name, ""), **fields
        )
        for name, fields in rows.items()
    }
    return first, second, entries


def shown_messages(response) -> list[str]:
    return re.findall(r'<td class="log-message">entry (\w)</td>', html(response))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["f", "e", "d", "c", "b", "a"]),  # INFO and up unless asked
        ({"level": ""}, ["g", "f", "e", "d", "c", "b", "a"]),
        ({"level": "debug"}, ["g", "f", "e", "d", "c", "b", "a"]),
        ({"level": "warn"}, ["f", "e", "d", "c", "b"]),
        ({"level": "error"}, ["d", "c"]),
        ({"operation": "validation"}, ["f"]),
        ({"entity": "office"}, ["e"]),
        ({"record": "7/1"}, ["c", "b"]),
        ({"level": "error", "entity": "doctor", "record": "8"}, ["d"]),
        ({"action": "session.pause_requested"}, ["e", "a"]),
        ({"actor": "alice"}, ["f", "a"]),
        ({"actor": " alice "}, ["f", "a"]),
        ({"action": "session.pause_requested", "actor": "bob"}, ["e"]),
        ({"action": "record.failed", "level": "error"}, ["c"]),
    ],
)
def test_log_filters_return_exactly_the_matching_entries(auditor_client, log_set, params, expected):
    assert shown_messages(auditor_client.get(url("logs"), params)) == expected


def test_log_filters_by_session(auditor_client, log_set):
    first, _, _ = log_set
    response = auditor_client.get(
        url("logs"), {"session": str(first.migration_session_id), "level": ""}
    )
    assert shown_messages(response) == ["g", "c", "b", "a"]


def test_log_record_filter_matches_a_needlessly_escaped_key_too(auditor_client):
    MigrationExecutionLogFactory(record_id="A-1", message="entry x")
    response = auditor_client.get(url("logs"), {"record": "A\\-1"})
    assert shown_messages(response) == ["x"]


def test_log_shows_each_entrys_action_and_actor_as_links_to_their_filters(auditor_client, log_set):
    _, _, entries = log_set
    page = html(auditor_client.get(url("logs"), {"action": "session.pause_requested"}))

    row = re.search(rf'<tr [^>]*data-id="{entries["e"].id}">.*?</tr>', page, re.S).group(0)
    assert '?action=session.pause_requested&amp;level="' in row
    assert ">session.pause_requested</a>" in row
    assert '?actor=bob&amp;level="' in row and ">bob</a>" in row
    # The filter offers every code, the one asked for selected.
    assert '<option value="session.pause_requested" selected>' in page
    assert '<option value="mapping.activated">' in page


def test_log_refuses_an_unknown_action_and_shows_no_entry(auditor_client, log_set):
    response = auditor_client.get(url("logs"), {"action": "session.nope"})
    assert shown_messages(response) == []
    assert "Select a valid choice" in html(response)


def test_log_refuses_a_bad_session_id(auditor_client, log_set):
    response = auditor_client.get(url("logs"), {"session": "nope"})
    assert shown_messages(response) == []
    assert "Session id" in html(response)


def test_log_pages_by_keyset_on_id_without_counting(auditor_client):
    session = MigrationStatusFactory()
    MigrationExecutionLog.objects.bulk_create(
        MigrationExecutionLog(
            session=session,
            entity_type="doctor",
            operation_type=OperationType.RECORD_MIGRATION,
            message=f"entry {n}",
        )
        for n in range(2 * PAGE_SIZE + 3)
    )
    expected = [
        str(i) for i in MigrationExecutionLog.objects.order_by("-id").values_list("id", flat=True)
    ]
    pattern = r'<tr class="level-info" data-id="(\d+)">'

    pages = follow_pages(auditor_client, url("logs") + "?entity=doctor", pattern)

    assert [len(p) for p in pages] == [PAGE_SIZE, PAGE_SIZE, 3]
    assert [i for page in pages for i in page] == expected


def read_csv(response) -> list[list[str]]:
    assert response.streaming
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body)))


def test_csv_export_streams_the_filtered_entries_oldest_first(auditor_client, log_set):
    first, _, entries = log_set
    response = auditor_client.get(url("logs_csv"), {"level": "warn", "entity": "doctor"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = read_csv(response)
    assert rows[0] == [
        "id",
        "timestamp",
        "level",
        "operation",
        "action",
        "actor",
        "session",
        "entity",
        "record",
        "message",
        "error_details",
    ]
    assert [row[9] for row in rows[1:]] == ["entry b", "entry c", "entry d", "entry f"]
    b = entries["b"]
    assert rows[1] == [
        str(b.id),
        b.timestamp.isoformat(),
        "warn",
        "record_migration",
        "record.failed",
        "",
        str(first.migration_session_id),
        "doctor",
        "7/1",
        "entry b",
        "",
    ]


def test_csv_export_quotes_cells_a_spreadsheet_would_run_as_formulas(auditor_client):
    messages = ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "plain", "a=b"]
    for message in messages:
        MigrationExecutionLogFactory(message=message, record_id="=1", entity_type="doctor")
    MigrationExecutionLogFactory(message="by a user", actor="=cmd|' /C calc'!A0")
    rows = read_csv(auditor_client.get(url("logs_csv")))[1:]
    assert rows.pop()[5] == "'=cmd|' /C calc'!A0"  # a username is typed by people too
    assert [row[9] for row in rows] == [
        '\'=HYPERLINK("http://x")',
        "'+1+1",
        "'-2",
        "'@SUM(A1)",
        "plain",
        "a=b",
    ]
    assert {row[8] for row in rows} == {"'=1"}


def test_csv_export_filters_by_action_and_actor_and_has_both_columns(auditor_client, log_set):
    _, second, entries = log_set
    response = auditor_client.get(
        url("logs_csv"), {"action": "session.pause_requested", "actor": "bob", "level": ""}
    )
    rows = read_csv(response)
    assert [dict(zip(rows[0], row, strict=True)) for row in rows[1:]] == [
        {
            "id": str(entries["e"].id),
            "timestamp": entries["e"].timestamp.isoformat(),
            "level": "warn",
            "operation": "record_migration",
            "action": "session.pause_requested",
            "actor": "bob",
            "session": str(second.migration_session_id),
            "entity": "office",
            "record": entries["e"].record_id,
            "message": "entry e",
            "error_details": "",
        }
    ]


def test_csv_export_refuses_bad_filters(auditor_client):
    response = auditor_client.get(url("logs_csv"), {"level": "loud"})
    assert response.status_code == 400


def test_csv_export_of_many_entries_reads_in_chunks_without_offset(auditor_client):
    MigrationExecutionLog.objects.bulk_create(
        MigrationExecutionLog(operation_type=OperationType.VALIDATION, message=f"m{n}")
        for n in range(2500)
    )
    with CaptureQueriesContext(connection) as queries:
        rows = read_csv(auditor_client.get(url("logs_csv")))
    assert len(rows) == 2501
    assert [row[9] for row in rows[1:4]] == ["m0", "m1", "m2"]
    no_count_or_offset(queries.captured_queries)


# --------------------------------------------------------------------------- lookup


def test_lookup_shows_the_uuid_and_every_event_with_version_and_reason(auditor_client):
    SchemaMappingDefinitionFactory(entity_type="appointment", active=True)
    first, second = MigrationStatusFactory(), MigrationStatusFactory()
    entry = RecordMapFactory(entity_type="appointment", legacy_key=["P/1", 2])
    assert entry.legacy_key_text == "P\\/1/2"
    now = timezone.now()
    RecordEventFactory(
        entity_type="appointment",
        legacy_key_text=entry.legacy_key_text,
        session=first,
        action=RecordAction.CREATED,
        mapping_version=1,
        occurred_at=now - dt.timedelta(hours=2),
    )
    RecordEventFactory(
        entity_type="appointment",
        legacy_key_text=entry.legacy_key_text,
        session=second,
        action=RecordAction.FAILED,
        mapping_version=2,
        reason="field 'starts_at': required",
        occurred_at=now - dt.timedelta(hours=1),
    )
    RecordEventFactory(entity_type="appointment", legacy_key_text="P\\/1/3", session=second)

    response = auditor_client.get(url("lookup"), {"entity": "appointment", "key": "P\\/1/2"})

    text = html(response)
    assert str(entry.destination_uuid) in text
    rows = re.findall(r'<tr class="action-(\w+)">(.*?)</tr>', text, re.S)
    assert [action for action, _ in rows] == ["created", "failed"]
    assert str(first.migration_session_id)[:8] in rows[0][1] and "v1" in rows[0][1]
    assert "v2" in rows[1][1]
    assert "field &#x27;starts_at&#x27;: required" in rows[1][1]
    assert reverse("runs:session", args=[second.migration_session_id]) in rows[1][1]


def test_lookup_says_when_a_record_is_unknown(auditor_client):
    SchemaMappingDefinitionFactory(entity_type="doctor", active=True)
    response = auditor_client.get(url("lookup"), {"entity": "doctor", "key": "404"})
    assert "not found in the record map" in html(response)


def test_lookup_shows_an_open_quarantine_entry(auditor_client):
    SchemaMappingDefinitionFactory(entity_type="doctor", active=True)
    QuarantinedRecordFactory(entity_type="doctor", legacy_key=[9], reason="email is required")
    text = html(auditor_client.get(url("lookup"), {"entity": "doctor", "key": "9"}))
    assert "In quarantine" in text and "email is required" in text


def test_lookup_offers_the_entities_with_an_active_mapping(auditor_client):
    for name in ("office", "doctor"):
        SchemaMappingDefinitionFactory(entity_type=name, active=True)
    SchemaMappingDefinitionFactory(entity_type="retired")  # a draft only

    text = html(auditor_client.get(url("lookup")))

    select = re.search(r'<select name="entity"[^>]*>(.*?)</select>', text, re.S).group(1)
    options = re.findall(r'<option value="([^"]*)"', select)
    assert options[0] == "" and sorted(options[1:]) == ["doctor", "office"]
    # A link from the log may name an entity with no active mapping: it still works.
    linked = html(auditor_client.get(url("lookup"), {"entity": "retired", "key": "1"}))
    assert "retired (no active mapping)" in linked and "not found in the record map" in linked
    # Any other name is refused.
    refused = html(auditor_client.get(url("lookup"), {"entity": "nope", "key": "1"}))
    assert "Select a valid choice. nope is not one of the available choices." in refused


@pytest.fixture
def patients(db):
    SchemaMappingDefinitionFactory(entity_type="patient", active=True)
    SchemaMappingDefinitionFactory(entity_type="office", active=True)
    RecordMapFactory(entity_type="patient", legacy_key=["P-001"])
    RecordMapFactory(entity_type="patient", legacy_key=["Q-7   "])  # a padded CHAR key
    RecordMapFactory(entity_type="patient", legacy_key=["ABCDEFGHIJKLMNOP"])
    RecordMapFactory(entity_type="office", legacy_key=["p-002"])
    QuarantinedRecordFactory(entity_type="patient", legacy_key=["Z-9"])  # never migrated


def suggested(client, entity: str, key: str) -> list[str]:
    text = html(client.get(url("lookup"), {"entity": entity, "key": key}))
    found = re.search(r'<p class="did-you-mean">(.*?)</p>', text, re.S)
    return re.findall(r">“([^”]*)”</a>", found.group(1)) if found else []


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("p-001", ["P-001"]),
        ("P-001 ", ["P-001"]),
        ("p-001  ", ["P-001"]),
        ("Q-7", ["Q-7   "]),
        ("q-7", []),  # case and padding at once: not guessed
        ("abcdefghijklmnop", ["ABCDEFGHIJKLMNOP"]),  # long keys: the usual spellings
        ("z-9", ["Z-9"]),  # in quarantine only
        ("p-002", []),  # another entity's key
        ("P-0011", []),
    ],
)
def test_lookup_suggests_a_key_that_differs_only_by_case_or_trailing_spaces(
    auditor_client, patients, typed, expected
):
    assert suggested(auditor_client, "patient", typed) == expected


def test_the_did_you_mean_link_opens_the_record(auditor_client, patients):
    text = html(auditor_client.get(url("lookup"), {"entity": "patient", "key": "p-001"}))
    assert "Did you mean" in text
    assert f'href="{url("lookup")}?entity=patient&amp;key=P-001"' in text
    found = html(auditor_client.get(url("lookup"), {"entity": "patient", "key": "P-001"}))
    assert "Did you mean" not in found and "Destination UUID" in found


def test_the_case_probe_is_bounded_equality_on_the_index(auditor_client, patients):
    with CaptureQueriesContext(connection) as queries:
        auditor_client.get(url("lookup"), {"entity": "patient", "key": "p-001"})
    probes = [
        q["sql"].upper()
        for q in queries.captured_queries
        if "MIGRATION_MAPPINGS" in q["sql"].upper() or "MIGRATION_QUARANTINE" in q["sql"].upper()
    ]
    assert probes and len(probes) <= 8
    for sql in probes:
        assert "LOWER(" not in sql and "UPPER(" not in sql and " LIKE " not in sql, sql
        assert '"ENTITY_TYPE" = ' in sql, sql


def test_lookup_shows_who_resolved_a_quarantine_entry_and_why(auditor_client):
    SchemaMappingDefinitionFactory(entity_type="doctor", active=True)
    QuarantinedRecordFactory(
        entity_type="doctor",
        legacy_key=[9],
        reason="email is required",
        resolved_at=timezone.now(),
        resolved_by="operator",
        resolution_note="address added by hand",
    )
    QuarantinedRecordFactory(
        entity_type="doctor", legacy_key=[9], reason="still bad", resolved_at=timezone.now()
    )
    text = html(auditor_client.get(url("lookup"), {"entity": "doctor", "key": "9"}))
    rows = re.findall(r'<tr class="resolved" data-entry="\d+">(.*?)</tr>', text, re.S)
    assert len(rows) == 2
    assert "still bad" in rows[0] and ">a run</span>" in rows[0]
    assert "email is required" in rows[1] and "operator" in rows[1]
    assert "address added by hand" in rows[1]
    assert "not found in the record map" not in text


# --------------------------------------------------------------------------- quarantine


def quarantine_ids(response) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="quarantine-(\d+)"', html(response))]


def test_quarantine_lists_open_entries_by_default_and_filters(auditor_client):
    open_doctor = QuarantinedRecordFactory(entity_type="doctor", rule="format")
    open_office = QuarantinedRecordFactory(entity_type="office", rule="required")
    resolved = QuarantinedRecordFactory(
        entity_type="doctor", rule="format", resolved_at=timezone.now()
    )
    assert quarantine_ids(auditor_client.get(url("quarantine"))) == [open_office.pk, open_doctor.pk]
    assert quarantine_ids(auditor_client.get(url("quarantine"), {"state": "resolved"})) == [
        resolved.pk
    ]
    assert quarantine_ids(
        auditor_client.get(url("quarantine"), {"state": "all", "entity": "doctor"})
    ) == [resolved.pk, open_doctor.pk]
    assert quarantine_ids(auditor_client.get(url("quarantine"), {"rule": "required"})) == [
        open_office.pk
    ]


def test_quarantine_pages_by_keyset(auditor_client):
    QuarantinedRecord.objects.bulk_create(
        QuarantinedRecord(
            entity_type="doctor",
            legacy_key=[n],
            legacy_key_text=str(n),
            rule="format",
            reason="bad",
            content_hash="h",
        )
        for n in range(PAGE_SIZE + 4)
    )
    expected = [
        str(i) for i in QuarantinedRecord.objects.order_by("-id").values_list("id", flat=True)
    ]
    pages = follow_pages(
        auditor_client, url("quarantine"), r'<tr id="quarantine-(\d+)"', bounded_counts=True
    )
    assert [len(p) for p in pages] == [PAGE_SIZE, 4]
    assert pages[0] + pages[1] == expected


def test_auditor_sees_no_action_buttons_and_every_action_post_is_refused(auditor_client):
    entry = QuarantinedRecordFactory(content_hash="a" * 64)
    page = html(auditor_client.get(url("quarantine")))
    assert f'id="quarantine-{entry.pk}"' in page
    assert "Retry on next run</button>" not in page and "Resolved</button>" not in page
    for name in ("quarantine_retry", "quarantine_resolve"):
        assert auditor_client.post(url(name, entry.pk)).status_code == 403
    entry.refresh_from_db()
    assert (entry.content_hash, entry.resolved_at) == ("a" * 64, None)
    assert not MigrationExecutionLog.objects.exists()


def test_editor_cannot_act_on_the_quarantine_either(editor_client):
    entry = QuarantinedRecordFactory(content_hash="a" * 64)
    assert editor_client.post(url("quarantine_resolve", entry.pk)).status_code == 403
    entry.refresh_from_db()
    assert entry.resolved_at is None


def test_actions_answer_get_with_405(operator_client):
    entry = QuarantinedRecordFactory()
    assert operator_client.get(url("quarantine_retry", entry.pk)).status_code == 405


def test_actions_need_the_csrf_token(operator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    entry = QuarantinedRecordFactory(content_hash="a" * 64)
    assert client.post(url("quarantine_resolve", entry.pk)).status_code == 403
    entry.refresh_from_db()
    assert entry.resolved_at is None


def test_operator_sees_the_action_buttons(operator_client):
    entry = QuarantinedRecordFactory(content_hash="a" * 64)
    page = html(operator_client.get(url("quarantine")))
    assert f'action="{url("quarantine_retry", entry.pk)}"' in page
    assert f'action="{url("quarantine_resolve", entry.pk)}"' in page


def test_operator_resolves_an_entry_and_the_log_names_them(operator_client):
    entry = QuarantinedRecordFactory(entity_type="doctor", legacy_key=[5], content_hash="a" * 64)
    back = url("quarantine") + "?entity=doctor"

    response = operator_client.post(
        url("quarantine_resolve", entry.pk), {"next": back, "note": "fixed by hand in the CRM"}
    )

    assert response.status_code == 302 and response["Location"] == back
    entry.refresh_from_db()
    assert entry.resolved_at is not None
    assert (entry.resolved_by, entry.resolution_note) == ("operator", "fixed by hand in the CRM")
    log = MigrationExecutionLog.objects.get()
    assert (log.operation_type, log.entity_type, log.record_id) == ("validation", "doctor", "5")
    assert log.message == (
        "doctor 5: operator marked the quarantined record resolved: fixed by hand in the CRM"
    )
    assert (log.action, log.actor) == ("quarantine.resolved", "operator")
    assert log.context_data == {"quarantine_id": entry.pk, "note": "fixed by hand in the CRM"}


def test_resolving_one_entry_without_a_note_is_refused_and_changes_nothing(operator_client):
    entry = QuarantinedRecordFactory(entity_type="doctor", legacy_key=[5], content_hash="a" * 64)
    for note in ("", "   \n\t "):
        response = operator_client.post(
            url("quarantine_resolve", entry.pk), {"note": note}, follow=True
        )
        assert f"quarantine entry {entry.pk}: a note is required to resolve" in html(response)
    entry.refresh_from_db()
    assert (entry.resolved_at, entry.resolved_by, entry.resolution_note) == (None, "", "")
    assert not MigrationExecutionLog.objects.exists()


def test_resolving_twice_is_refused_and_changes_nothing(operator_client):
    entry = QuarantinedRecordFactory(content_hash="a" * 64)
    operator_client.post(url("quarantine_resolve", entry.pk), {"note": "first"})
    entry.refresh_from_db()
    first_resolution = entry.resolved_at

    response = operator_client.post(
        url("quarantine_resolve", entry.pk), {"note": "second"}, follow=True
    )

    assert "was resolved at" in html(response)
    entry.refresh_from_db()
    assert entry.resolved_at == first_resolution
    assert entry.resolution_note == "first"
    assert MigrationExecutionLog.objects.count() == 1


def test_an_action_never_redirects_off_site(operator_client):
    entry = QuarantinedRecordFactory(content_hash="a" * 64)
    response = operator_client.post(
        url("quarantine_retry", entry.pk), {"next": "https://evil.example/"}
    )
    assert response["Location"] == url("quarantine")


def test_operator_requests_a_retry_which_clears_the_hashes_and_is_logged(operator_client):
    mapped = RecordMapFactory(entity_type="doctor", legacy_key=[5], content_hash="b" * 64)
    entry = QuarantinedRecordFactory(entity_type="doctor", legacy_key=[5], content_hash="b" * 64)
    other = RecordMapFactory(entity_type="doctor", legacy_key=[6], content_hash="c" * 64)

    response = operator_client.post(url("quarantine_retry", entry.pk), follow=True)

    assert "will be tried again on the next run" in html(response)
    entry.refresh_from_db()
    mapped.refresh_from_db()
    other.refresh_from_db()
    assert (entry.content_hash, entry.resolved_at) == ("", None)
    assert mapped.content_hash == ""
    assert other.content_hash == "c" * 64
    log = MigrationExecutionLog.objects.get()
    assert log.operation_type == "validation" and "operator asked to retry" in log.message
    assert (log.action, log.actor) == ("quarantine.retried", "operator")
    # Once requested, the button is disabled and a second request is refused.
    page = html(operator_client.get(url("quarantine")))
    assert "retry requested" in page and 'disabled title="Already requested"' in page
    response = operator_client.post(url("quarantine_retry", entry.pk), follow=True)
    assert "already requested" in html(response)
    assert MigrationExecutionLog.objects.count() == 1


def test_htmx_action_answers_with_the_row_in_its_new_state(operator_client):
    entry = QuarantinedRecordFactory(content_hash="a" * 64)
    response = operator_client.post(
        url("quarantine_resolve", entry.pk),
        {"note": "obsolete record"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/audit/quarantine/?state=all",
    )
    text = html(response).strip()
    assert text.startswith(f'<tr id="quarantine-{entry.pk}" class="resolved">')
    assert "marked resolved" in text
    assert "obsolete record" in text and ">operator</strong>" in text
    assert "<html" not in text


def test_unknown_entry_is_404(operator_client):
    assert operator_client.post(url("quarantine_retry", 999_999)).status_code == 404


# --------------------------------------------------------------------------- retry, for real


def analysis_counts() -> dict[str, int]:
    _, results = analyze_entities(entities=[ENTITY])
    counts = results[0].counts
    return {
        "new": counts.new,
        "modified": counts.modified,
        "retry": counts.retry,
        "unchanged": counts.unchanged,
    }


def test_a_requested_retry_is_counted_as_changed_and_tried_by_the_next_run(operator_client, people):
    first = run(baseline=True)
    assert first["entities"][ENTITY]["failed"] == 1
    entry = QuarantinedRecord.objects.get(entity_type=ENTITY, resolved_at__isnull=True)
    assert entry.legacy_key_text == "2"
    assert analysis_counts() == {"new": 0, "modified": 0, "retry": 1, "unchanged": 2}

    operator_client.post(url("quarantine_retry", entry.pk))

    # Never migrated, so `new` now: the analysis sees it as changed, not as a plain retry.
    assert analysis_counts() == {"new": 1, "modified": 0, "retry": 0, "unchanged": 2}
    second = run()["entities"][ENTITY]
    assert (second["new"], second["processed"], second["failed"]) == (1, 0, 1)
    # Tried and refused again: the same open entry, with its reason and hash back.
    entry.refresh_from_db()
    assert entry.resolved_at is None and entry.content_hash != ""
    assert QuarantinedRecord.objects.filter(entity_type=ENTITY).count() == 1
    assert list(
        RecordEvent.objects.filter(entity_type=ENTITY, legacy_key_text="2").values_list(
            "action", flat=True
        )
    ) == ["failed", "failed"]


def test_a_requested_retry_of_a_migrated_record_counts_it_modified(operator_client, people):
    """A record migrated earlier that then failed on a re-send of the same content (say a
    `--baseline` run refused by a `unique` conflict) has the source's hash in the record map:
    as an open entry it is a `retry`; a requested retry makes it `modified` (written again
    whatever its hash), and the run that writes it resolves the entry."""
    run(baseline=True)
    mapped = RecordMap.objects.get(entity_type=ENTITY, legacy_key_text="3")
    entry = QuarantinedRecordFactory(
        entity_type=ENTITY,
        legacy_key=[3],
        rule="unique",
        field="email",
        reason="unique: 'cy@x.org' is already used by another destination record",
        content_hash=mapped.content_hash,
        mapping_version=mapped.mapping_version,
    )
    # Open entries are always retried: record 2 (the bad e-mail) and record 3.
    assert analysis_counts() == {"new": 0, "modified": 0, "retry": 2, "unchanged": 1}

    operator_client.post(url("quarantine_retry", entry.pk))

    assert analysis_counts() == {"new": 0, "modified": 1, "retry": 1, "unchanged": 1}
    document = run()["entities"][ENTITY]
    assert (document["processed"], document["failed"]) == (1, 1)
    entry.refresh_from_db()
    assert entry.resolved_at is not None
    written = RecordMap.objects.get(pk=mapped.pk)
    assert written.content_hash == mapped.content_hash
    assert written.destination_uuid == mapped.destination_uuid
    assert people.destination_rows() == [(1, "Ann", "ann@x.org"), (3, "Cy", "cy@x.org")]


def test_resolving_one_entry_leaves_the_others_open(operator_client):
    entry = QuarantinedRecordFactory(content_hash="a" * 64)
    others = [QuarantinedRecordFactory(content_hash="a" * 64).pk for _ in range(2)]
    operator_client.post(url("quarantine_resolve", entry.pk), {"note": "done"})
    still_open = QuarantinedRecord.objects.filter(pk__in=others, resolved_at__isnull=True)
    assert still_open.count() == 2


def test_log_entries_link_to_their_session_page(auditor_client):
    session = MigrationStatusFactory()
    MigrationExecutionLogFactory(session=session, message="entry z")
    text = html(auditor_client.get(url("logs")))
    assert reverse("runs:session", args=[session.migration_session_id]) in text
