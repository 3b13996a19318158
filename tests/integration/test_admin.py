"""The admin by role: who sees what, who edits what, and how mapping versions move.

Every refused request is followed by a check that nothing changed in the database.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
from django import forms
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.admin.utils import quote
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from migrationsapp.admin.base import COUNT_CAP, EstimatedCountPaginator
from migrationsapp.models import (
    FieldMapping,
    MigrationExecutionLog,
    RecordEvent,
    SchemaMappingDefinition,
)
from migrationsapp.models.analysis import AnalysisStatus
from migrationsapp.roles import ALL_MODELS
from migrationsapp.services.connections import save_connection
from migrationsapp.services.mapping_versions import (
    MappingVersionError,
    activate_definition,
    clone_definition,
)
from tests.factories import (
    USER_PASSWORD,
    AnalysisChangeFactory,
    ConnectionFactory,
    DifferentialAnalysisResultFactory,
    FieldMappingFactory,
    MigrationCheckpointFactory,
    MigrationControlFactory,
    MigrationExecutionLogFactory,
    MigrationStatusFactory,
    QuarantinedRecordFactory,
    RecordEventFactory,
    RecordMapFactory,
    RunScheduleFactory,
    SchemaMappingDefinitionFactory,
    TransformationFunctionFactory,
    ValidationRuleFactory,
    VerifyEntityReportFactory,
    VerifyRunFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

FACTORIES = {
    "migrationstatus": MigrationStatusFactory,
    "migrationcontrol": MigrationControlFactory,
    "migrationcheckpoint": MigrationCheckpointFactory,
    "differentialanalysisresult": DifferentialAnalysisResultFactory,
    "analysischange": AnalysisChangeFactory,
    "migrationexecutionlog": MigrationExecutionLogFactory,
    "recordmap": RecordMapFactory,
    "recordevent": RecordEventFactory,
    "quarantinedrecord": QuarantinedRecordFactory,
    "schemamappingdefinition": SchemaMappingDefinitionFactory,
    "fieldmapping": FieldMappingFactory,
    "validationrule": ValidationRuleFactory,
    "transformationfunction": TransformationFunctionFactory,
    "connection": ConnectionFactory,
    "verifyrun": VerifyRunFactory,
    "verifyentityreport": VerifyEntityReportFactory,
    "runschedule": RunScheduleFactory,
}
READ_ONLY_MODELS = (
    "migrationstatus",
    "migrationcontrol",
    "migrationcheckpoint",
    "differentialanalysisresult",
    "analysischange",
    "migrationexecutionlog",
    "recordmap",
    "recordevent",
    "quarantinedrecord",
    "fieldmapping",
    "validationrule",
    "transformationfunction",
    "verifyrun",
    "verifyentityreport",
    "runschedule",
)


def admin_url(model_name: str, view: str, obj=None) -> str:
    args = [quote(obj.pk)] if obj is not None else []
    return reverse(f"admin:migrationsapp_{model_name}_{view}", args=args)


def snapshot(model) -> list[dict]:
    return list(model.objects.order_by("pk").values())


def changeform_post_data(response) -> dict[str, object]:
    """The POST a browser would send for an unchanged change form, inline rows included."""
    data: dict[str, object] = {}
    form = response.context["adminform"].form
    for name, field in form.fields.items():
        _put(data, form[name].html_name, form[name].value(), field)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management[name].html_name] = management[name].value()
        # Only the stored rows: no blank extra forms.
        data[f"{formset.prefix}-TOTAL_FORMS"] = formset.initial_form_count()
        for row in formset.initial_forms:
            for name, field in row.fields.items():
                _put(data, row[name].html_name, row[name].value(), field)
    return data


def _put(data: dict[str, object], key: str, value: object, field: forms.Field) -> None:
    if isinstance(field, forms.BooleanField):
        if value:  # an unticked checkbox sends nothing
            data[key] = "on"
        return
    data[key] = "" if value is None else value


@pytest.fixture
def one_of_each(db) -> dict[str, object]:
    return {name: factory() for name, factory in FACTORIES.items()}


@pytest.fixture
def office_databases(settings, tmp_path) -> None:
    """SQLite ``legacy`` and ``target`` connections holding the office factory's tables.

    Activation checks a definition against both databases, as the import does.
    """
    settings.DIFFMIG_SQLITE_ROOT = tmp_path
    for name, ddl in (
        ("legacy", "CREATE TABLE legacy_offices (id INTEGER PRIMARY KEY, name TEXT)"),
        ("target", "CREATE TABLE office (id UUID PRIMARY KEY, name TEXT)"),
    ):
        path = tmp_path / f"{name}.sqlite3"
        with sqlite3.connect(path) as database:
            database.execute(ddl)
        save_connection(name=name, url=f"sqlite:///{path}")


@pytest.fixture
def draft_with_rows(db) -> SchemaMappingDefinition:
    draft = SchemaMappingDefinitionFactory(entity_type="office", source_key=["id"])
    FieldMappingFactory(definition=draft, position=0, source_field="name", destination_field="name")
    FieldMappingFactory(
        definition=draft,
        position=1,
        source_field="phone",
        destination_field="phone",
        transformation="phone_e164(value, 'US')",
    )
    ValidationRuleFactory(definition=draft, field_name="name", rule_type="required")
    TransformationFunctionFactory(definition=draft, name="full_name")
    return draft


def rows_of(definition: SchemaMappingDefinition) -> list[tuple]:
    return list(
        FieldMapping.objects.filter(definition=definition)
        .order_by("position")
        .values_list("position", "source_field", "destination_field", "transformation")
    )


# --- anonymous -------------------------------------------------------------------------


def test_anonymous_admin_index_redirects_to_the_admin_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"


@pytest.mark.parametrize("model_name", ALL_MODELS)
def test_anonymous_changelist_redirects_to_the_admin_login(client, model_name):
    url = admin_url(model_name, "changelist")
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


def test_a_persona_logs_in_through_the_admin_login_form(client, auditor):
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "auditor", "password": USER_PASSWORD, "next": "/admin/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_every_model_of_the_app_is_registered_in_the_admin():
    from django.apps import apps
    from django.contrib import admin

    registered = {model._meta.model_name for model in admin.site._registry}
    app_models = {
        model._meta.model_name for model in apps.get_app_config("migrationsapp").get_models()
    }
    assert app_models == set(ALL_MODELS)
    assert app_models <= registered
    assert admin.site.site_header == "diffmig"


# --- auditors: read everything, write nothing -------------------------------------------


@pytest.mark.parametrize("model_name", ALL_MODELS)
def test_auditor_reads_every_changelist_and_change_view(auditor_client, one_of_each, model_name):
    obj = one_of_each[model_name]
    assert auditor_client.get(admin_url(model_name, "changelist")).status_code == 200
    change_page = auditor_client.get(admin_url(model_name, "change", obj))
    assert change_page.status_code == 200
    # Read-only: the page offers no save button.
    assert b'name="_save"' not in change_page.content
    assert auditor_client.get(admin_url(model_name, "history", obj)).status_code == 200


def refused_statuses(client, requests: list[tuple[str, str, dict | None]]) -> dict[str, int]:
    """The status of each request, keyed "METHOD url" (to compare with all 403s)."""
    return {
        f"{method.upper()} {url}": getattr(client, method)(url, data or {}).status_code
        for method, url, data in requests
    }


def write_requests(model_name: str, obj) -> list[tuple[str, str, dict | None]]:
    return [
        ("get", admin_url(model_name, "add"), None),
        ("post", admin_url(model_name, "add"), {"name": "x"}),
        ("post", admin_url(model_name, "change", obj), {"name": "x"}),
        ("get", admin_url(model_name, "delete", obj), None),
        ("post", admin_url(model_name, "delete", obj), {"post": "yes"}),
        (
            "post",
            admin_url(model_name, "changelist"),
            {"action": "delete_selected", "_selected_action": [str(obj.pk)], "post": "yes"},
        ),
    ]


@pytest.mark.parametrize("model_name", ALL_MODELS)
def test_auditor_is_refused_every_add_change_and_delete(auditor_client, one_of_each, model_name):
    obj = one_of_each[model_name]
    model = type(obj)
    before = snapshot(model)
    requests = write_requests(model_name, obj)

    statuses = refused_statuses(auditor_client, requests)

    assert statuses == dict.fromkeys(statuses, 403)
    assert len(statuses) == len(requests)
    assert snapshot(model) == before
    assert LogEntry.objects.count() == 0


@pytest.mark.parametrize("model_name", READ_ONLY_MODELS)
def test_not_even_a_superuser_writes_engine_rows(admin_client, one_of_each, model_name):
    obj = one_of_each[model_name]
    model = type(obj)
    before = snapshot(model)
    assert admin_client.get(admin_url(model_name, "changelist")).status_code == 200
    assert admin_client.get(admin_url(model_name, "change", obj)).status_code == 200

    statuses = refused_statuses(admin_client, write_requests(model_name, obj))

    assert statuses == dict.fromkeys(statuses, 403)
    assert snapshot(model) == before
    assert LogEntry.objects.count() == 0


# --- huge tables --------------------------------------------------------------------------


def test_log_changelist_never_counts_the_whole_table(auditor_client):
    MigrationExecutionLogFactory.create_batch(3)
    with CaptureQueriesContext(connection) as queries:
        response = auditor_client.get(admin_url("migrationexecutionlog", "changelist"))
    assert response.status_code == 200
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the paginator counts (capped)"
    assert all("LIMIT" in sql.upper() for sql in counts), counts
    assert response.context["cl"].result_count == 3
    assert response.context["cl"].full_result_count is None


def test_capped_count_stops_at_the_cap_and_says_so():
    class SmallCapPaginator(EstimatedCountPaginator):
        count_cap = 3

    MigrationExecutionLogFactory.create_batch(4, entity_type="office")
    MigrationExecutionLogFactory(entity_type="doctor")
    office = MigrationExecutionLog.objects.filter(entity_type="office").order_by("-id")
    doctor = MigrationExecutionLog.objects.filter(entity_type="doctor").order_by("-id")

    exact = EstimatedCountPaginator(office, 50)
    assert (exact.count, exact.count_kind) == (4, "exact")
    capped = SmallCapPaginator(office, 2)
    assert (capped.count, capped.count_kind, capped.num_pages) == (3, "at_least", 2)
    under_cap = SmallCapPaginator(doctor, 2)
    assert (under_cap.count, under_cap.count_kind) == (1, "exact")


def test_filtered_list_of_a_big_table_stops_counting_at_the_cap(auditor_client):
    MigrationExecutionLog.objects.bulk_create(
        MigrationExecutionLog(entity_type="office", operation_type="record_migration", message="m")
        for _ in range(COUNT_CAP + 1)
    )

    response = auditor_client.get(admin_url("migrationexecutionlog", "changelist"), {"q": "office"})

    assert response.context["cl"].result_count == COUNT_CAP
    assert response.context["cl"].paginator.count_kind == "at_least"
    assert f"{COUNT_CAP}+" in response.content.decode()


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_unfiltered_count_on_postgresql_is_the_planner_estimate_once_the_table_is_big(
    auditor_client,
):
    from migrationsapp.admin import base

    rows = [
        MigrationExecutionLog(entity_type="office", operation_type="record_migration", message="m")
        for _ in range(COUNT_CAP + 5)
    ]
    MigrationExecutionLog.objects.bulk_create(rows)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE migration_execution_logs")

    unfiltered = EstimatedCountPaginator(MigrationExecutionLog.objects.order_by("-id"), 50)
    assert unfiltered.count == base._estimated_rows(MigrationExecutionLog.objects.all())
    assert unfiltered.count_kind == "estimate"
    page = auditor_client.get(admin_url("migrationexecutionlog", "changelist"))
    assert f"about {unfiltered.count}" in page.content.decode()

    filtered = EstimatedCountPaginator(
        MigrationExecutionLog.objects.filter(entity_type="office").order_by("-id"), 50
    )
    assert filtered.count == COUNT_CAP
    assert filtered.count_kind == "at_least"


def test_record_events_are_found_by_exact_key_and_filtered_by_entity(auditor_client):
    wanted = RecordEventFactory(entity_type="office", legacy_key_text="1007/3")
    RecordEventFactory(entity_type="office", legacy_key_text="1007/30")
    RecordEventFactory(entity_type="doctor", legacy_key_text="1007/3")
    SchemaMappingDefinitionFactory(entity_type="office")
    url = admin_url("recordevent", "changelist")

    by_key = auditor_client.get(url, {"q": "1007/3"})
    assert {e.pk for e in by_key.context["cl"].result_list} == {
        wanted.pk,
        RecordEvent.objects.get(entity_type="doctor").pk,
    }
    by_key_and_entity = auditor_client.get(url, {"q": "1007/3", "entity": "office"})
    assert [e.pk for e in by_key_and_entity.context["cl"].result_list] == [wanted.pk]
    by_session = auditor_client.get(url, {"q": str(wanted.session_id)})
    assert [e.pk for e in by_session.context["cl"].result_list] == [wanted.pk]


def test_an_analysis_still_reading_its_source_is_listed_as_such(auditor_client):
    reading = DifferentialAnalysisResultFactory(status=AnalysisStatus.READING, rows_seen=4_000)
    DifferentialAnalysisResultFactory()  # complete
    url = admin_url("differentialanalysisresult", "changelist")

    page = auditor_client.get(url)
    assert page.status_code == 200
    row = next(r for r in page.context["cl"].result_list if r.pk == reading.pk)
    assert (row.get_status_display(), row.rows_seen) == ("Reading", 4_000)
    assert '<td class="field-status">Reading</td>' in page.content.decode()
    only_reading = auditor_client.get(url, {"status__exact": AnalysisStatus.READING})
    assert [a.pk for a in only_reading.context["cl"].result_list] == [reading.pk]


def test_analysis_change_set_is_listed_through_its_link(auditor_client):
    change = AnalysisChangeFactory()
    AnalysisChangeFactory()  # another analysis
    response = auditor_client.get(
        admin_url("analysischange", "changelist"), {"analysis__id__exact": str(change.analysis_id)}
    )
    assert response.status_code == 200
    assert [c.pk for c in response.context["cl"].result_list] == [change.pk]


# --- mapping definitions: drafts, frozen versions, clone, activate ---------------------


def test_editor_edits_a_draft_definition_and_its_field_mapping_rows(editor_client, draft_with_rows):
    url = admin_url("schemamappingdefinition", "change", draft_with_rows)
    page = editor_client.get(url)
    assert page.status_code == 200
    data = changeform_post_data(page)
    assert data["source_key"] == "id"
    data["source_key"] = "id, branch"
    data["field_mappings-0-transformation"] = "upper(trim(value))"
    data["field_mappings-1-DELETE"] = "on"
    data["field_mappings-TOTAL_FORMS"] = 3
    data.update(
        {
            "field_mappings-2-position": 2,
            "field_mappings-2-source_field": "opened",
            "field_mappings-2-destination_field": "opened_on",
            "field_mappings-2-transformation": "legacy_date",
            "field_mappings-2-default_value": "",
        }
    )

    response = editor_client.post(url, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    assert rows_of(draft_with_rows) == [
        (0, "name", "name", "upper(trim(value))"),
        (2, "opened", "opened_on", "legacy_date"),
    ]
    draft_with_rows.refresh_from_db()
    assert draft_with_rows.source_key == ["id", "branch"]
    assert draft_with_rows.version == 1
    assert draft_with_rows.is_active is False
    entry = LogEntry.objects.get()
    assert entry.action_flag == CHANGE
    assert entry.object_id == str(draft_with_rows.pk)


def test_editor_cannot_edit_the_rows_of_an_active_definition(editor_client, draft_with_rows):
    url = admin_url("schemamappingdefinition", "change", draft_with_rows)
    data = changeform_post_data(editor_client.get(url))
    activate_definition(definition_id=draft_with_rows.pk, user=None)
    before = (snapshot(SchemaMappingDefinition), snapshot(FieldMapping))
    data["field_mappings-0-transformation"] = "lower(value)"

    response = editor_client.post(url, data)

    assert response.status_code == 403
    assert (snapshot(SchemaMappingDefinition), snapshot(FieldMapping)) == before
    assert LogEntry.objects.count() == 0


def test_active_definition_page_is_read_only_with_clone_but_no_activate_button(editor_client):
    active = SchemaMappingDefinitionFactory(active=True)
    FieldMappingFactory(definition=active)
    page = editor_client.get(admin_url("schemamappingdefinition", "change", active))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_url("schemamappingdefinition", "clone", active).encode() in page.content
    assert admin_url("schemamappingdefinition", "activate", active).encode() not in page.content
    assert b"Clone it to edit a new draft" in page.content


def test_once_active_definition_stays_frozen_after_deactivation(editor_client):
    v1 = SchemaMappingDefinitionFactory(entity_type="office", active=True)
    v2 = SchemaMappingDefinitionFactory(entity_type="office")
    activate_definition(definition_id=v2.pk, user=None)
    before = snapshot(SchemaMappingDefinition)

    response = editor_client.post(
        admin_url("schemamappingdefinition", "change", v1), {"description": "edited"}
    )

    assert response.status_code == 403
    assert snapshot(SchemaMappingDefinition) == before


def test_editor_adds_a_definition_as_a_draft_under_the_next_version(editor_client):
    SchemaMappingDefinitionFactory(entity_type="office", active=True)
    page = editor_client.get(admin_url("schemamappingdefinition", "add"))
    data = changeform_post_data(page)
    data.update(
        {
            "entity_type": "office",
            "source_table": "offices",
            "source_key": "id",
            "destination_table": "office",
            "field_mappings-TOTAL_FORMS": 1,
            "field_mappings-0-position": 0,
            "field_mappings-0-source_field": "name",
            "field_mappings-0-destination_field": "name",
            "field_mappings-0-default_value": "",
        }
    )

    response = editor_client.post(admin_url("schemamappingdefinition", "add"), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    created = SchemaMappingDefinition.objects.get(entity_type="office", version=2)
    assert (created.is_active, created.activated_at, created.created_by) == (False, None, "editor")
    assert rows_of(created) == [(0, "name", "name", "")]
    assert LogEntry.objects.get().action_flag == ADDITION


def test_clone_creates_the_next_version_as_a_draft_with_copied_rows(editor_client, draft_with_rows):
    activate_definition(definition_id=draft_with_rows.pk, user=None)

    response = editor_client.post(admin_url("schemamappingdefinition", "clone", draft_with_rows))

    clone = SchemaMappingDefinition.objects.get(entity_type="office", version=2)
    assert response.status_code == 302
    assert response["Location"] == admin_url("schemamappingdefinition", "change", clone)
    assert (clone.is_active, clone.activated_at, clone.created_by) == (False, None, "editor")
    assert clone.source_key == ["id"]
    assert rows_of(clone) == rows_of(draft_with_rows)
    assert list(clone.validation_rules.values_list("field_name", "rule_type")) == [
        ("name", "required")
    ]
    assert list(clone.transformation_functions.values_list("name", flat=True)) == ["full_name"]
    entry = LogEntry.objects.get()
    assert (entry.object_id, entry.action_flag, entry.change_message) == (
        str(clone.pk),
        ADDITION,
        "cloned office v1 → v2",
    )
    # The original is untouched and still the active one.
    draft_with_rows.refresh_from_db()
    assert draft_with_rows.is_active is True


def test_clone_action_never_reuses_a_version_number(editor_client):
    v1 = SchemaMappingDefinitionFactory(entity_type="office", active=True)
    clone_definition(definition_id=v1.pk, user=None)  # v2

    response = editor_client.post(
        admin_url("schemamappingdefinition", "changelist"),
        {"action": "clone_selected", "_selected_action": [str(v1.pk)]},
    )

    assert response.status_code == 302
    versions = SchemaMappingDefinition.objects.filter(entity_type="office").order_by("version")
    assert list(versions.values_list("version", "is_active")) == [(1, True), (2, False), (3, False)]
    assert LogEntry.objects.get().change_message == "cloned office v1 → v3"


def test_definitions_are_never_deleted_in_the_admin(editor_client):
    draft = SchemaMappingDefinitionFactory()
    url = admin_url("schemamappingdefinition", "delete", draft)
    before = snapshot(SchemaMappingDefinition)

    assert editor_client.get(url).status_code == 403
    assert editor_client.post(url, {"post": "yes"}).status_code == 403
    assert snapshot(SchemaMappingDefinition) == before


def test_activate_leaves_exactly_one_active_definition_per_entity(editor_client, office_databases):
    v1 = SchemaMappingDefinitionFactory(entity_type="office", active=True)
    v2 = SchemaMappingDefinitionFactory(entity_type="office")
    other = SchemaMappingDefinitionFactory(entity_type="doctor", active=True)
    v1_activated_at = v1.activated_at

    response = editor_client.post(admin_url("schemamappingdefinition", "activate", v2))

    assert response.status_code == 302
    active = SchemaMappingDefinition.objects.filter(is_active=True)
    assert sorted(active.values_list("entity_type", "version")) == [("doctor", 1), ("office", 2)]
    v1.refresh_from_db()
    v2.refresh_from_db()
    other.refresh_from_db()
    assert (v1.is_active, v1.activated_at) == (False, v1_activated_at)
    assert v2.activated_at is not None
    assert other.is_active is True
    messages = dict(LogEntry.objects.values_list("object_id", "change_message"))
    assert messages == {
        str(v2.pk): "activated office v2 (replacing v1)",
        str(v1.pk): "deactivated office v1 (v2 activated)",
    }


def test_activate_refuses_a_draft_whose_tables_are_missing_and_changes_nothing(
    editor_client, office_databases
):
    v1 = SchemaMappingDefinitionFactory(entity_type="office", active=True)
    v2 = SchemaMappingDefinitionFactory(entity_type="office", source_table="legacy_wards")
    before = snapshot(SchemaMappingDefinition)

    response = editor_client.post(admin_url("schemamappingdefinition", "activate", v2), follow=True)

    page = response.content.decode()
    assert "Not activated: office v2:" in page
    assert "legacy_wards" in page
    assert snapshot(SchemaMappingDefinition) == before
    assert SchemaMappingDefinition.objects.get(is_active=True).pk == v1.pk
    assert LogEntry.objects.count() == 0


def test_activate_action_refuses_two_versions_of_one_entity(editor_client):
    v1 = SchemaMappingDefinitionFactory(entity_type="office")
    v2 = SchemaMappingDefinitionFactory(entity_type="office")
    before = snapshot(SchemaMappingDefinition)

    response = editor_client.post(
        admin_url("schemamappingdefinition", "changelist"),
        {"action": "activate_selected", "_selected_action": [str(v1.pk), str(v2.pk)]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Select one version per entity" in response.content.decode()
    assert snapshot(SchemaMappingDefinition) == before
    assert LogEntry.objects.count() == 0


def test_activating_the_active_definition_is_refused_and_changes_nothing(editor_client):
    v1 = SchemaMappingDefinitionFactory(entity_type="office", active=True)
    before = snapshot(SchemaMappingDefinition)

    response = editor_client.post(admin_url("schemamappingdefinition", "activate", v1), follow=True)

    assert "is already the active definition" in response.content.decode()
    assert snapshot(SchemaMappingDefinition) == before
    assert LogEntry.objects.count() == 0
    with pytest.raises(MappingVersionError):
        activate_definition(definition_id=v1.pk, user=None)


def test_activating_a_draft_the_engine_refuses_changes_nothing(editor_client):
    v1 = SchemaMappingDefinitionFactory(entity_type="office", active=True)
    broken = SchemaMappingDefinitionFactory(entity_type="office", detection="timestamp")
    FieldMappingFactory(definition=broken, source_field="", destination_field="name")
    before = snapshot(SchemaMappingDefinition)

    response = editor_client.post(
        admin_url("schemamappingdefinition", "activate", broken), follow=True
    )

    page = response.content.decode()
    assert "Not activated: office v2: entity &#x27;office&#x27;: detection" in page
    assert "detection &#x27;timestamp&#x27; needs timestamp_column" in page
    assert "a field needs source or expression" in page
    assert snapshot(SchemaMappingDefinition) == before
    assert SchemaMappingDefinition.objects.get(is_active=True).pk == v1.pk
    assert LogEntry.objects.count() == 0


def test_activation_fingerprints_the_rows_as_edited(editor_client, draft_with_rows):
    from migrationsapp.engine.mapping import content_fingerprint
    from migrationsapp.selectors.definitions import definition_to_entity

    activate_definition(definition_id=draft_with_rows.pk, user=None)
    v1 = SchemaMappingDefinition.objects.get(pk=draft_with_rows.pk)
    v2 = clone_definition(definition_id=v1.pk, user=None)
    assert v2.content_fingerprint == v1.content_fingerprint
    FieldMapping.objects.filter(definition=v2, destination_field="name").update(
        transformation="upper(value)"
    )

    activated = activate_definition(definition_id=v2.pk, user=None)

    assert activated.content_fingerprint == content_fingerprint(definition_to_entity(activated))
    assert activated.content_fingerprint != v1.content_fingerprint
    assert v1.content_fingerprint == content_fingerprint(definition_to_entity(v1))


def test_clone_and_activate_answer_get_with_405(editor_client):
    draft = SchemaMappingDefinitionFactory()
    before = snapshot(SchemaMappingDefinition)
    for view in ("clone", "activate"):
        response = editor_client.get(admin_url("schemamappingdefinition", view, draft))
        assert response.status_code == 405
    assert snapshot(SchemaMappingDefinition) == before


def test_anonymous_cannot_clone_or_activate(client):
    draft = SchemaMappingDefinitionFactory()
    before = snapshot(SchemaMappingDefinition)
    for view in ("clone", "activate"):
        url = admin_url("schemamappingdefinition", view, draft)
        response = client.post(url)
        assert response.status_code == 302
        assert response["Location"] == f"/admin/login/?next={url}"
    assert snapshot(SchemaMappingDefinition) == before


@pytest.mark.parametrize("persona_client", ["auditor_client", "operator_client"])
def test_auditor_and_operator_cannot_clone_or_activate(request, persona_client):
    client = request.getfixturevalue(persona_client)
    draft = SchemaMappingDefinitionFactory()
    FieldMappingFactory(definition=draft)
    before = (snapshot(SchemaMappingDefinition), snapshot(FieldMapping))

    for view in ("clone", "activate"):
        assert client.post(admin_url("schemamappingdefinition", view, draft)).status_code == 403
    for action in ("clone_selected", "activate_selected"):
        response = client.post(
            admin_url("schemamappingdefinition", "changelist"),
            {"action": action, "_selected_action": [str(draft.pk)]},
        )
        assert response.status_code == 403

    assert (snapshot(SchemaMappingDefinition), snapshot(FieldMapping)) == before
    assert LogEntry.objects.count() == 0


def test_operator_cannot_edit_a_draft_definitions_rows(
    operator_client, editor_client, draft_with_rows
):
    url = admin_url("schemamappingdefinition", "change", draft_with_rows)
    data = changeform_post_data(editor_client.get(url))
    data["field_mappings-0-transformation"] = "lower(value)"
    before = (snapshot(SchemaMappingDefinition), snapshot(FieldMapping))

    assert operator_client.post(url, data).status_code == 403
    assert operator_client.get(admin_url("schemamappingdefinition", "add")).status_code == 403
    page = operator_client.get(url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content

    assert (snapshot(SchemaMappingDefinition), snapshot(FieldMapping)) == before
    assert LogEntry.objects.count() == 0


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_concurrent_clones_and_activations_keep_versions_unique_and_one_active():
    v1 = SchemaMappingDefinitionFactory(entity_type="office", active=True)
    drafts = [SchemaMappingDefinitionFactory(entity_type="office") for _ in range(2)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run(call) -> None:
        try:
            barrier.wait()
            call()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    calls = [
        *(lambda d=d: activate_definition(definition_id=d.pk, user=None) for d in drafts),
        *(lambda: clone_definition(definition_id=v1.pk, user=None) for _ in range(2)),
    ]
    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    office = SchemaMappingDefinition.objects.filter(entity_type="office").order_by("version")
    assert list(office.values_list("version", flat=True)) == [1, 2, 3, 4, 5]
    assert office.filter(is_active=True).count() == 1
    assert office.filter(is_active=True).get().version in {2, 3}
    assert office.exclude(activated_at=None).count() == 3
