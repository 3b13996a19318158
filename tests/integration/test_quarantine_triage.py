"""Quarantine triage: groups with counts, a bad parent's children under it, bulk retry and
resolve (a note required) of a selection, a group or a parent with its dependants, and the
CSV export of a filtered quarantine.

Django's test client on the control database (PostgreSQL, or SQLite on the embedded default).
One test runs a real two-entity migration whose bad parent makes its children fail, to check
that the page nests what the engine really writes.
"""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from migrationsapp.engine.ids import encode_key
from migrationsapp.models import (
    MigrationExecutionLog,
    QuarantinedRecord,
    RecordMap,
    SchemaMappingDefinition,
)
from migrationsapp.selectors.quarantine import (
    QuarantineFilters,
    quarantine_export_rows,
    quarantine_groups,
)
from migrationsapp.views.audit_forms import group_token
from tests.factories import (
    FieldMappingFactory,
    QuarantinedRecordFactory,
    RecordMapFactory,
    SchemaMappingDefinitionFactory,
)
from tests.support.people import run
from tests.support.reliability import record
from tests.support.teams import create_teams

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

QUARANTINE = reverse("audit:quarantine")
BULK = reverse("audit:quarantine_bulk")
CSV = reverse("audit:quarantine_csv")
HASH = "a" * 64


def html(response) -> str:
    return response.content.decode()


def row_ids(response) -> list[int]:
    """The top-level rows of the list, in order."""
    return [int(i) for i in re.findall(r'<tr id="quarantine-(\d+)"', html(response))]


def row_html(response, entry: QuarantinedRecord) -> str:
    found = re.search(rf'<tr id="quarantine-{entry.pk}".*?</tr>', html(response), re.S)
    assert found, f"no row for entry {entry.pk}"
    return found.group(0)


def link_reference(child: str, field: str, parent: str) -> None:
    """Active mappings in which ``child.field`` references ``parent``."""
    for entity in {child, parent}:
        if not SchemaMappingDefinition.objects.filter(entity_type=entity, is_active=True).exists():
            SchemaMappingDefinitionFactory(entity_type=entity, active=True)
    definition = SchemaMappingDefinition.objects.get(entity_type=child, is_active=True)
    FieldMappingFactory(
        definition=definition,
        source_field=field,
        destination_field=field,
        reference="self" if parent == child else parent,
    )


def bad_parent(key: int, *, entity: str = "office") -> QuarantinedRecord:
    return QuarantinedRecordFactory(
        entity_type=entity,
        legacy_key=[key],
        rule="required",
        field="name",
        reason="name is required",
        content_hash=HASH,
    )


def waiting_child(key: int, parent: QuarantinedRecord, *, entity: str = "doctor"):
    return QuarantinedRecordFactory(
        entity_type=entity,
        legacy_key=[key],
        rule="reference",
        field="office_id",
        value=parent.legacy_key_text,
        reason=f"missing parent: office {parent.legacy_key_text!r} has not been migrated",
        content_hash=HASH,
    )


@pytest.fixture
def family(db):
    """office 7 (bad) with doctors 1-3 waiting for it; office 8 (bad) alone; doctor 9 waits
    for office 99, which is not quarantined; doctor 10 fails a rule of its own."""
    link_reference("doctor", "office_id", "office")
    office = bad_parent(7)
    children = [waiting_child(n, office) for n in (1, 2, 3)]
    lonely = bad_parent(8)
    orphan = QuarantinedRecordFactory(
        entity_type="doctor",
        legacy_key=[9],
        rule="reference",
        field="office_id",
        value="99",
        reason="missing parent: office '99' has not been migrated",
        content_hash=HASH,
    )
    other = QuarantinedRecordFactory(
        entity_type="doctor", legacy_key=[10], rule="format", field="email", content_hash=HASH
    )
    return {
        "office": office,
        "children": children,
        "lonely": lonely,
        "orphan": orphan,
        "other": other,
    }


# --------------------------------------------------------------------------- nesting


def test_a_bad_parents_children_show_under_it_not_as_rows(auditor_client, family):
    response = auditor_client.get(QUARANTINE)

    office, children = family["office"], family["children"]
    assert row_ids(response) == [
        family["other"].pk,
        family["orphan"].pk,
        family["lonely"].pk,
        office.pk,
    ]
    row = row_html(response, office)
    assert 'data-count="3"' in row and "3 records wait for it" in row
    for child in children:
        assert f"doctor {child.legacy_key_text}</a>" in row
    assert f'href="{QUARANTINE}?parent={office.pk}"' in row
    # The orphan's parent is not quarantined: it stays a row of its own, with no note.
    assert "is in quarantine too" not in row_html(response, family["orphan"])
    assert "wait for it" not in row_html(response, family["lonely"])


def test_the_parent_filter_lists_one_parents_children(auditor_client, family):
    office, children = family["office"], family["children"]
    response = auditor_client.get(QUARANTINE, {"parent": office.pk})
    assert row_ids(response) == [c.pk for c in reversed(children)]
    assert "Records waiting for" in html(response)
    # Each names its quarantined parent.
    assert "Its parent" in row_html(response, children[0])


def test_filtered_to_the_childrens_entity_they_show_with_their_parent_named(auditor_client, family):
    response = auditor_client.get(QUARANTINE, {"entity": "doctor", "rule": "reference"})
    children = family["children"]
    assert row_ids(response) == [family["orphan"].pk, *(c.pk for c in reversed(children))]
    row = row_html(response, children[1])
    assert "Its parent" in row and ">office 7</a> is in quarantine too (required on name)" in row


def test_a_resolved_parent_no_longer_hides_its_children(auditor_client, family):
    QuarantinedRecord.objects.filter(pk=family["office"].pk).update(resolved_at=timezone.now())
    ids = row_ids(auditor_client.get(QUARANTINE))
    assert {c.pk for c in family["children"]} <= set(ids)


def test_two_self_referencing_records_waiting_for_each_other_both_show(auditor_client):
    link_reference("employee", "manager_id", "employee")
    first = QuarantinedRecordFactory(
        entity_type="employee", legacy_key=[1], rule="reference", field="manager_id", value="2"
    )
    second = QuarantinedRecordFactory(
        entity_type="employee", legacy_key=[2], rule="reference", field="manager_id", value="1"
    )
    assert row_ids(auditor_client.get(QUARANTINE)) == [second.pk, first.pk]


def test_the_page_reads_nesting_set_wise_whatever_the_number_of_parents(auditor_client):
    link_reference("doctor", "office_id", "office")

    def queries_for(parents: int) -> int:
        QuarantinedRecord.objects.all().delete()
        for n in range(parents):
            office = bad_parent(1000 + n)
            waiting_child(2000 + 2 * n, office)
            waiting_child(2001 + 2 * n, office)
        with CaptureQueriesContext(connection) as queries:
            response = auditor_client.get(QUARANTINE)
        assert len(row_ids(response)) == parents
        assert html(response).count("2 records wait for it") == parents
        return len(queries.captured_queries)

    assert queries_for(3) == queries_for(40)


def test_a_real_run_nests_the_children_of_a_refused_parent(operator_client, tmp_path, settings):
    """team 2 has no name (required): its members 21 and 22 fail for their missing parent."""
    root = tmp_path.resolve()
    settings.DIFFMIG_SQLITE_ROOT = root
    create_teams(root)
    document = run()
    assert document["entities"]["team"]["failed"] == 1
    assert document["entities"]["member"]["failed"] == 2
    team = QuarantinedRecord.objects.get(entity_type="team", resolved_at=None)
    members = QuarantinedRecord.objects.filter(entity_type="member", resolved_at=None)
    assert {(m.rule, m.field, m.value) for m in members} == {("reference", "team_id", "2")}

    response = operator_client.get(QUARANTINE)

    assert row_ids(response) == [team.pk]
    row = row_html(response, team)
    assert "2 records wait for it" in row
    assert "member 21</a>" in row and "member 22</a>" in row


# --------------------------------------------------------------------------- groups


def test_groups_count_entries_by_entity_rule_and_field(auditor_client, family):
    response = auditor_client.get(QUARANTINE)
    groups = re.findall(
        r'<tr class="group" data-entity="([^"]+)" data-rule="([^"]+)">.*?'
        r'<td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>\s*<td class="num">(\d+)</td>',
        html(response),
        re.S,
    )
    assert groups == [
        ("doctor", "reference", "office_id", "4"),
        ("office", "required", "name", "2"),
        ("doctor", "format", "email", "1"),
    ]


def test_groups_read_a_bounded_number_of_entries_and_say_so(family):
    summary = quarantine_groups(filters=QuarantineFilters(), limit=3)
    assert summary.capped and summary.total == 4
    assert not quarantine_groups(filters=QuarantineFilters(), limit=7).capped
    assert quarantine_groups(filters=QuarantineFilters(), limit=7).total == 7


def test_groups_follow_the_filters(auditor_client, family):
    summary = quarantine_groups(filters=QuarantineFilters(entity="office"))
    assert [(g.entity, g.rule, g.field, g.count) for g in summary.groups] == [
        ("office", "required", "name", 2)
    ]


# --------------------------------------------------------------------------- bulk actions


def bulk(client: Client, action: str, **fields) -> object:
    return client.post(BULK, {"action": action, **fields}, follow=True)


def test_bulk_resolve_of_a_selection_stores_who_and_why_and_logs_it(operator_client, family):
    first, second = family["lonely"], family["other"]

    response = bulk(
        operator_client, "resolve", ids=[first.pk, second.pk], note="  fixed in the CRM  "
    )

    assert "2 quarantine entries marked resolved." in html(response)
    for entry in (first, second):
        entry.refresh_from_db()
        assert entry.resolved_at is not None
        assert (entry.resolved_by, entry.resolution_note) == ("operator", "fixed in the CRM")
    assert QuarantinedRecord.objects.filter(resolved_at__isnull=True).count() == 5
    log = MigrationExecutionLog.objects.get()
    assert log.operation_type == "validation"
    assert log.message == (
        "operator marked 2 quarantined records resolved (2 selected entries): fixed in the CRM"
    )
    assert (log.action, log.actor) == ("quarantine.resolved", "operator")
    assert log.context_data["note"] == "fixed in the CRM"
    assert sorted(log.context_data["selection"]["ids"]) == sorted([first.pk, second.pk])
    # Shown in the list (resolved state) …
    listed = operator_client.get(QUARANTINE, {"state": "resolved"})
    row = row_html(listed, first)
    assert ">operator</strong>" in row and "fixed in the CRM" in row
    # … and on the record's lookup page.
    page = html(operator_client.get(reverse("audit:lookup"), {"entity": "office", "key": "8"}))
    history = re.search(r'<table class="list quarantine-history">.*?</table>', page, re.S)
    assert history and "operator" in history.group(0) and "fixed in the CRM" in history.group(0)


def test_bulk_resolve_without_a_note_is_refused_and_changes_nothing(operator_client, family):
    for note in ("", "   ", "\n\t"):
        response = bulk(operator_client, "resolve", ids=[family["lonely"].pk], note=note)
        assert "1 selected entry: a note is required to resolve" in html(response)
    assert not QuarantinedRecord.objects.filter(resolved_at__isnull=False).exists()
    assert not MigrationExecutionLog.objects.exists()


def test_bulk_resolve_of_a_group_closes_its_open_entries_only(operator_client, family):
    earlier = QuarantinedRecordFactory(
        entity_type="office",
        rule="required",
        field="name",
        resolved_at=timezone.now(),
        resolved_by="someone",
        resolution_note="older",
    )
    token = group_token("office", "required", "name")

    response = bulk(operator_client, "resolve", groups=[token], note="offices retired")

    assert "2 quarantine entries marked resolved." in html(response)
    resolved = QuarantinedRecord.objects.filter(resolution_note="offices retired")
    assert {e.pk for e in resolved} == {family["office"].pk, family["lonely"].pk}
    earlier.refresh_from_db()
    assert (earlier.resolved_by, earlier.resolution_note) == ("someone", "older")
    assert (
        QuarantinedRecord.objects.filter(entity_type="doctor", resolved_at__isnull=True).count()
        == 5
    )


def test_bulk_resolve_of_a_parent_with_its_dependants(operator_client, family):
    office = family["office"]
    refused = bulk(operator_client, "resolve", families=[office.pk], note="")
    assert "1 entry with its dependants: a note is required to resolve" in html(refused)
    response = bulk(operator_client, "resolve", families=[office.pk], note="office closed")
    assert "4 quarantine entries marked resolved." in html(response)
    resolved = set(
        QuarantinedRecord.objects.filter(resolved_at__isnull=False).values_list("pk", flat=True)
    )
    assert resolved == {office.pk, *(c.pk for c in family["children"])}


def test_bulk_retry_clears_the_hashes_of_the_selection_and_skips_the_requested(
    operator_client, family
):
    lonely, other = family["lonely"], family["other"]
    mapped = RecordMapFactory(entity_type="doctor", legacy_key=[10], content_hash="b" * 64)
    untouched = RecordMapFactory(entity_type="doctor", legacy_key=[11], content_hash="c" * 64)
    QuarantinedRecord.objects.filter(pk=lonely.pk).update(content_hash="")  # already requested

    response = bulk(operator_client, "retry", ids=[lonely.pk, other.pk], note="source fixed")

    assert (
        "1 quarantine entry will be tried again on the next run; 1 left as they were "
        "(already resolved or requested)." in html(response)
    )
    other.refresh_from_db()
    mapped.refresh_from_db()
    untouched.refresh_from_db()
    assert (other.content_hash, other.resolved_at) == ("", None)
    assert mapped.content_hash == ""
    assert untouched.content_hash == "c" * 64
    assert QuarantinedRecord.objects.exclude(content_hash="").count() == 5
    log = MigrationExecutionLog.objects.get()
    assert log.message == (
        "operator asked to retry 1 quarantined records on the next run (2 selected entries): "
        "source fixed"
    )


def test_bulk_retry_of_a_group_clears_every_open_entry_and_map_hash_of_it(operator_client, family):
    for child in family["children"]:
        RecordMap.objects.create(
            entity_type="doctor",
            legacy_key=child.legacy_key,
            legacy_key_text=child.legacy_key_text,
            destination_uuid=RecordMapFactory.build(entity_type="doctor").destination_uuid,
            content_hash="d" * 64,
        )
    token = group_token("doctor", "reference", "office_id")
    response = bulk(operator_client, "retry", groups=[token])
    assert "4 quarantine entries will be tried again on the next run." in html(response)
    assert set(QuarantinedRecord.objects.filter(content_hash="").values_list("pk", flat=True)) == {
        family["orphan"].pk,
        *(c.pk for c in family["children"]),
    }
    assert not RecordMap.objects.exclude(content_hash="").exists()


def test_bulk_action_over_htmx_answers_with_the_results_of_the_page_it_came_from(
    operator_client, family
):
    response = operator_client.post(
        BULK,
        {"action": "resolve", "ids": [family["other"].pk], "note": "done"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL=f"http://testserver{QUARANTINE}?entity=doctor&state=open",
    )
    text = html(response).strip()
    assert text.startswith('<section class="card" id="results">')
    assert "1 quarantine entry marked resolved." in text
    # The doctors still open under the page's filter, the resolved one gone; no office.
    assert row_ids(response) == [family["orphan"].pk, *(c.pk for c in reversed(family["children"]))]
    assert f"{CSV}?entity=doctor&amp;state=open" in text


def test_a_refused_bulk_action_over_htmx_keeps_the_selection_and_note(operator_client, family):
    token = group_token("office", "required", "name")
    response = operator_client.post(
        BULK,
        {"action": "resolve", "ids": [family["other"].pk], "groups": [token], "note": " "},
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL=f"http://testserver{QUARANTINE}",
    )
    text = html(response)
    assert "a note is required to resolve" in text
    assert re.search(rf'name="ids" value="{family["other"].pk}" form="bulk"[^>]* checked', text)
    boxes = re.findall(
        r'<input type="checkbox" name="groups" value="([^"]*)"[^>]*?( checked)?>', text
    )
    assert [(value.replace("&quot;", '"'), bool(on)) for value, on in boxes] == [
        (group_token("doctor", "reference", "office_id"), False),
        (token, True),
        (group_token("doctor", "format", "email"), False),
    ]


def test_hostile_bulk_input_is_refused_with_one_line_and_changes_nothing(operator_client, family):
    cases = [
        {"ids": ["x"]},
        {"ids": ["-1"]},
        {"ids": ["1e9999"]},
        {"groups": ["not json"]},
        {"groups": ['{"entity": "office"}']},
        {"groups": ['["office", "required"]']},
        {"groups": ['["office", "required", 3]']},
        {"groups": ['["' + "x" * 300 + '", "required", "name"]']},
        {"families": ["0"]},
        {"action": "drop table", "ids": [family["other"].pk]},
        {},
    ]
    held = 0
    for fields in cases:
        data = {"action": "resolve", "note": "x", **fields}
        response = operator_client.post(BULK, data, follow=True)
        assert response.status_code == 200
        notices = re.findall(r'<li class="message error">([^<]*)</li>', html(response))
        assert len(notices) == 1 and "\n" not in notices[0], (fields, notices)
        assert not QuarantinedRecord.objects.filter(resolved_at__isnull=False).exists()
        held += 1
    # More fields than Django reads (DATA_UPLOAD_MAX_NUMBER_FIELDS): 400 before the view.
    response = operator_client.post(
        BULK, {"action": "resolve", "note": "x", "ids": [str(n) for n in range(1, 1100)]}
    )
    assert response.status_code == 400
    assert not QuarantinedRecord.objects.filter(resolved_at__isnull=False).exists()
    held += 1
    # A group whose names hold SQL or markup matches nothing: names are bound values.
    token = group_token("office' OR '1'='1", "<script>", "name")
    response = bulk(operator_client, "resolve", groups=[token], note="x")
    assert "0 quarantine entries marked resolved." in html(response)
    assert not QuarantinedRecord.objects.filter(resolved_at__isnull=False).exists()
    held += 1
    record(
        "web",
        "hostile quarantine bulk actions (bad ids, forged groups, too many, unknown action)",
        tried=len(cases) + 2,
        held=held,
        outcome="one-line refusal or no match; no entry changed",
    )


def test_auditors_and_editors_cannot_act_in_bulk_and_the_page_says_which_role_can(
    auditor_client, editor_client, family
):
    for client in (auditor_client, editor_client):
        response = client.post(
            BULK, {"action": "resolve", "ids": [family["other"].pk], "note": "x"}
        )
        assert response.status_code == 403
        text = html(response)
        assert "This needs the operators role." in text
        assert "Ask an administrator to add you to that group." in text
        assert 'class="main-nav"' in text and reverse("audit:quarantine") in text
    assert not QuarantinedRecord.objects.filter(resolved_at__isnull=False).exists()
    page = html(auditor_client.get(QUARANTINE))
    assert 'id="bulk"' not in page and 'name="ids"' not in page and 'name="groups"' not in page


def test_bulk_actions_need_the_csrf_token(operator, family):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post(BULK, {"action": "resolve", "ids": [family["other"].pk], "note": "x"})
    assert response.status_code == 403
    assert not QuarantinedRecord.objects.filter(resolved_at__isnull=False).exists()


def test_operator_sees_the_selection_boxes_and_the_bulk_form(operator_client, family):
    page = html(operator_client.get(QUARANTINE))
    assert f'action="{BULK}"' in page and 'name="note"' in page
    assert f'name="ids" value="{family["other"].pk}" form="bulk"' in page
    assert f'name="families" value="{family["office"].pk}" form="bulk"' in page
    assert 'name="groups" value="' in page


# --------------------------------------------------------------------------- CSV export


def read_csv(response) -> list[list[str]]:
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="diffmig-quarantine.csv"'
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_export_of_a_filtered_quarantine(auditor_client, family):
    QuarantinedRecord.objects.filter(pk=family["lonely"].pk).update(
        resolved_at=timezone.now(), resolved_by="operator", resolution_note="closed"
    )
    rows = read_csv(auditor_client.get(CSV, {"entity": "office", "state": "all"}))
    assert rows[0] == [
        "id",
        "entity",
        "key",
        "rule",
        "field",
        "value",
        "reason",
        "state",
        "first_seen_at",
        "last_seen_at",
        "last_session",
        "mapping_version",
        "resolved_at",
        "resolved_by",
        "resolution_note",
    ]
    assert [(r[0], r[2], r[7], r[13], r[14]) for r in rows[1:]] == [
        (str(family["office"].pk), "7", "open", "", ""),
        (str(family["lonely"].pk), "8", "resolved", "operator", "closed"),
    ]
    # Children are exported too (the export is flat), here under the parent filter.
    children = read_csv(auditor_client.get(CSV, {"parent": family["office"].pk}))
    assert [r[2] for r in children[1:]] == ["1", "2", "3"]


def test_csv_export_quotes_cells_a_spreadsheet_would_run_as_formulas(auditor_client):
    hostile = ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "\t=1", "\r=1"]
    for text in hostile:
        QuarantinedRecordFactory(
            entity_type="office",
            legacy_key=[text],
            value=text,
            reason=text,
            resolved_at=timezone.now(),
            resolved_by=text[:150],
            resolution_note=text,
        )
    rows = read_csv(auditor_client.get(CSV, {"state": "all"}))[1:]
    held = 0
    for row, text in zip(rows, hostile, strict=True):
        assert row[2] == "'" + encode_key([text])
        for column in (5, 6, 13, 14):
            assert row[column] == "'" + text, (column, row[column])
        held += 1
    record(
        "web",
        "formula text in quarantine keys, values, reasons and notes (CSV export)",
        tried=len(hostile),
        held=held,
        outcome="every cell written with a leading ' so no spreadsheet runs it",
    )


def test_csv_export_refuses_bad_filters(auditor_client):
    response = auditor_client.get(CSV, {"parent": "12345678"})
    assert response.status_code == 400
    assert response.content.decode() == "bad filter: parent: there is no quarantine entry 12345678"


def test_csv_export_reads_in_chunks_without_offset_or_count(db):
    QuarantinedRecord.objects.bulk_create(
        QuarantinedRecord(
            entity_type="doctor", legacy_key=[n], legacy_key_text=str(n), rule="r", reason="x"
        )
        for n in range(45)
    )
    with CaptureQueriesContext(connection) as queries:
        rows = list(quarantine_export_rows(filters=QuarantineFilters(), chunk=10))
    assert len(rows) == 45 and [r.id for r in rows] == sorted(r.id for r in rows)
    quarantine_reads = [
        q["sql"] for q in queries.captured_queries if "migration_quarantine" in q["sql"]
    ]
    assert len(quarantine_reads) == 5
    for sql in quarantine_reads:
        assert "OFFSET" not in sql.upper() and "COUNT(" not in sql.upper()


def test_the_page_links_the_export_with_its_filters(auditor_client, family):
    page = html(auditor_client.get(QUARANTINE, {"entity": "office"}))
    assert f'href="{CSV}?entity=office"' in page
