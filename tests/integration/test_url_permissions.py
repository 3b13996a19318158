"""Every URL of the project, for every role, by GET, POST and POST without a CSRF token.

The walk reads the URL configuration itself, so a page added later is checked without
anyone listing it here: anonymous users are sent to the login page; a role that holds none
of an area's write permissions gets 403 (or 405) on every POST; no POST passes without a
CSRF token; nothing answers 5xx. The admin (Django's own checks) is left out; the RQ
dashboard is walked too: only those who control runs may open it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from migrationsapp.models import RunSchedule, VerifyRun
from migrationsapp.roles import MAPPING_MODELS
from tests.factories import (
    ConnectionFactory,
    MigrationControlFactory,
    MigrationExecutionLogFactory,
    MigrationStatusFactory,
    QuarantinedRecordFactory,
    RecordEventFactory,
    RecordMapFactory,
    SchemaMappingDefinitionFactory,
)
from tests.support.workers import jobs_on_redis

pytestmark = [pytest.mark.django_db]
embedded = pytest.mark.embedded  # all but the RQ dashboard test work without services

LOGIN = "/accounts/login/"
# Public by design; checked on their own below.
PUBLIC = {"login", "logout"}
SKIPPED_NAMESPACES = {"admin"}
# The permissions that allow writing in each area (namespace). A role holding none of them
# must be refused every POST there.
WRITE_PERMISSIONS: dict[str, set[str]] = {
    "runs": {"migrationsapp.launch_migration", "migrationsapp.control_migration"},
    "audit": {"migrationsapp.change_quarantinedrecord"},
    "mappings": {
        f"migrationsapp.{verb}_{model}"
        for model in MAPPING_MODELS
        for verb in ("add", "change", "delete")
    },
    "django_rq": {"migrationsapp.control_migration"},
    # Operators launch verifications and manage schedules.
    "verify": {"migrationsapp.launch_migration"},
    "schedules": {"migrationsapp.launch_migration"},
    # Editors manage and test connections (a test's result is kept).
    "connections": {"migrationsapp.add_connection", "migrationsapp.change_connection"},
}
ROLES = ["anonymous", "auditor", "operator", "editor"]
# The pages templates/partials/_nav.html links to for anyone who may view sessions, logs,
# records and mappings (every role).
NAVIGATION = [
    "runs:dashboard",
    "audit:logs",
    "audit:lookup",
    "audit:quarantine",
    "audit:history",
    "mappings:list",
    "verify:list",
    "schedules:list",
    "connections:list",
]


@dataclass(frozen=True)
class Route:
    namespace: str
    name: str
    kwarg_names: tuple[str, ...]

    @property
    def view_name(self) -> str:
        return f"{self.namespace}:{self.name}" if self.namespace else self.name

    def __str__(self) -> str:
        return self.view_name


def _kwarg_names(pattern: URLPattern) -> tuple[str, ...]:
    converters = getattr(pattern.pattern, "converters", None)
    if converters is not None:
        return tuple(converters)
    return tuple(pattern.pattern.regex.groupindex)


def _walk(patterns, namespace: str = "") -> list[Route]:
    routes: list[Route] = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = pattern.namespace or namespace
            if inner in SKIPPED_NAMESPACES:
                continue
            routes += _walk(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            assert pattern.name, f"unnamed URL pattern {pattern.pattern} in {namespace!r}"
            route = Route(namespace, pattern.name, _kwarg_names(pattern))
            if route.name not in PUBLIC and route not in routes:
                routes.append(route)
    return routes


ROUTES = _walk(get_resolver().url_patterns)


@pytest.fixture
def samples(db) -> dict[str, object]:
    """Sample values for URL arguments, by argument name, backed by real rows."""
    session = MigrationStatusFactory()
    MigrationControlFactory(session=session, entity_type="orders")
    log = MigrationExecutionLogFactory(session=session, entity_type="orders")
    definition = SchemaMappingDefinitionFactory(entity_type="orders", active=True)
    quarantined = QuarantinedRecordFactory(entity_type="orders")
    mapped = RecordMapFactory(entity_type="orders")
    connection = ConnectionFactory(name="orders-db")
    RecordEventFactory(
        entity_type="orders", legacy_key_text=mapped.legacy_key_text, session=session
    )
    verification = VerifyRun.objects.create(entities=["orders"], launched_by="operator")
    schedule = RunSchedule.objects.create(name="nightly", interval_hours=24)
    return {
        "session_id": session.migration_session_id,
        "uuid": session.migration_session_id,
        "entity": "orders",
        "entity_type": "orders",
        "key": mapped.legacy_key_text,
        "legacy_key": mapped.legacy_key_text,
        "definition_id": definition.pk,
        "mapping_id": definition.pk,
        "version": definition.version,
        "quarantine_id": quarantined.pk,
        "record_id": quarantined.pk,
        "log_id": log.pk,
        "entry_id": log.pk,
        # A primary key means the area's own object.
        "audit:pk": quarantined.pk,
        "mappings:pk": definition.pk,
        "run_id": verification.pk,
        "schedule_id": schedule.pk,
        "connections:name": connection.name,
        # django-rq's arguments: any value, the guard answers before the view.
        "queue_index": 0,
        "scheduler_index": 0,
        "connection_index": 0,
        "job_id": "job",
        "result_id": "result",
        "key_name": "worker",
        "scheduler_name": "scheduler",
        "cron_job_name": "job",
        "token": "token",
    }


def _url(route: Route, samples: dict[str, object]) -> str:
    kwargs = {}
    for name in route.kwarg_names:
        for key in (f"{route.namespace}:{name}", name):
            if key in samples:
                kwargs[name] = samples[key]
                break
        else:
            raise AssertionError(f"{route}: add a sample value for the URL argument {name!r}")
    return reverse(route.view_name, kwargs=kwargs)


def _client(role: str, request, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if role != "anonymous":
        client.force_login(request.getfixturevalue(role))
    return client


def _is_login_redirect(response, url: str) -> bool:
    if response.status_code != 302:
        return False
    location = urlsplit(response["Location"])
    return location.path == LOGIN and parse_qs(location.query).get("next") == [url]


def _may_write(user, namespace: str) -> bool:
    return any(user.has_perm(p) for p in WRITE_PERMISSIONS.get(namespace, set()))


@embedded
def test_the_walk_finds_the_runs_pages():
    names = {str(route) for route in ROUTES}
    assert {
        "runs:dashboard",
        "runs:analyze",
        "runs:launch",
        "runs:session",
        "runs:session_log",
        "runs:pause",
        "runs:resume",
        "runs:cancel",
        "django_rq:home",
    } <= names
    assert {route.namespace for route in ROUTES} >= {"runs", "audit", "mappings", "django_rq"}


@embedded
def test_the_walk_finds_the_audit_pages():
    names = {str(route) for route in ROUTES}
    assert {
        "audit:history",
        "audit:logs",
        "audit:logs_csv",
        "audit:lookup",
        "audit:quarantine",
        "audit:quarantine_csv",
        "audit:quarantine_bulk",
        "audit:quarantine_retry",
        "audit:quarantine_resolve",
    } <= names


@embedded
def test_the_walk_finds_the_connections_and_mapping_editor_pages():
    names = {str(route) for route in ROUTES}
    assert {
        "connections:list",
        "connections:new",
        "connections:detail",
        "connections:edit",
        "connections:test",
        "mappings:activate_confirm",
    } <= names


@embedded
def test_the_walk_finds_the_verify_and_schedule_pages():
    names = {str(route) for route in ROUTES}
    assert {
        "verify:list",
        "verify:launch",
        "verify:report",
        "schedules:list",
        "schedules:create",
        "schedules:pause",
        "schedules:resume",
        "schedules:delete",
    } <= names


@embedded
@pytest.mark.parametrize("route", [r for r in ROUTES if r.namespace == "audit"], ids=str)
@pytest.mark.parametrize("role", ["auditor", "editor"])
def test_an_audit_refusal_is_the_403_page_naming_the_role(route, role, samples, request):
    """Read-only roles refused an operator's action on the audit pages get the page with the
    navigation and the role that would allow it."""
    response = _client(role, request).post(_url(route, samples))
    if response.status_code == 405:
        return  # a read-only page: GET only
    assert response.status_code == 403
    text = response.content.decode()
    assert "This needs the operators role." in text
    assert 'class="main-nav"' in text


@embedded
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_anonymous_is_sent_to_login(route, samples, client):
    url = _url(route, samples)
    for method in (client.get, client.post):
        response = method(url)
        assert _is_login_redirect(response, url), (method.__name__, response.status_code)


@embedded
@pytest.mark.parametrize("route", ROUTES, ids=str)
@pytest.mark.parametrize("role", ["auditor", "operator", "editor"])
def test_logged_in_roles_are_refused_only_what_their_role_cannot_do(route, role, samples, request):
    url = _url(route, samples)
    client = _client(role, request)
    may_write = _may_write(request.getfixturevalue(role), route.namespace)
    if not (route.namespace == "django_rq" and may_write):
        # (The RQ dashboard itself needs Redis: opened by test_rq_dashboard_opens_for_operators.)
        response = client.get(url)
        assert not _is_login_redirect(response, url)
        assert response.status_code < 500, response.status_code
        if response.status_code == 403:
            assert not may_write, "a role that may write here is refused a page"
        if route.namespace == "django_rq":
            assert response.status_code == 403
    if may_write:
        if route.namespace != "django_rq":
            assert client.post(url).status_code < 500
    else:
        assert client.post(url).status_code in (403, 405), "a read-only role wrote"


@embedded
@pytest.mark.parametrize("view_name", NAVIGATION)
@pytest.mark.parametrize("role", ["auditor", "operator", "editor"])
def test_every_role_opens_every_page_of_the_navigation(view_name, role, request, samples):
    response = _client(role, request).get(reverse(view_name))
    assert response.status_code == 200


@embedded
@pytest.mark.parametrize("route", ROUTES, ids=str)
@pytest.mark.parametrize("role", ROLES)
def test_every_post_without_a_csrf_token_is_refused(route, role, samples, request):
    url = _url(route, samples)
    assert _client(role, request, csrf=True).post(url).status_code == 403


@embedded
def test_login_page_is_public_and_its_post_needs_csrf(client):
    assert client.get(LOGIN).status_code == 200
    assert Client(enforce_csrf_checks=True).post(LOGIN, {"username": "x"}).status_code == 403


@embedded
def test_logout_is_a_post_with_csrf(auditor):
    client = Client(enforce_csrf_checks=True)
    client.force_login(auditor)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/").status_code == 403


@pytest.mark.services
def test_rq_dashboard_opens_for_operators(settings, operator_client):
    with jobs_on_redis(settings):
        response = operator_client.get(reverse("django_rq:home"))
    assert response.status_code == 200
    assert b"Queues" in response.content
