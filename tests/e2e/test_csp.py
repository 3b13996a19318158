"""The Content-Security-Policy holds in a real browser: no page trips it, and htmx still works.

Chromium reports every blocked inline script, inline style, eval or foreign source as a
``securitypolicyviolation`` event (and a console error). The test opens every page of the
application and of the admin (every registered model's list, add and change pages) with data
in them, and drives an htmx request, listening for both signals.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from playwright.sync_api import expect

from migrationsapp.models import MigrationStatus, SchemaMappingDefinition
from migrationsapp.services.mapping_versions import clone_definition
from tests.support.people import ENTITY, run
from tests.support.reliability import record

pytestmark = [pytest.mark.e2e, pytest.mark.services]

# Recorded by the page itself (an init script runs before any of the page's own).
LISTEN = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} `
    + `at ${e.sourceFile || location.pathname}:${e.lineNumber}`);
});
"""


@pytest.fixture
def watched(page):
    """The page, with a list of what the policy blocked (events and console errors)."""
    blocked: list[str] = []
    page.add_init_script(LISTEN)
    page.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return page, blocked


def violations(page) -> list[str]:
    return page.evaluate("window.__violations || []")


def admin_pages(superuser) -> list[str]:
    """Every registered model's list and add page, and a change page where a row exists."""
    urls = ["/admin/"]
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        if model_admin.has_add_permission(_request(superuser)):
            urls.append(reverse("admin:{}_{}_add".format(*info)))
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            urls.append(reverse("admin:{}_{}_change".format(*info), args=[first.pk]))
    return urls


def _request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def test_no_page_trips_the_content_security_policy(watched, superuser, log_in, people):
    page, blocked = watched
    document = run()
    session_id = document["session"]["id"]
    active = SchemaMappingDefinition.objects.get(entity_type=ENTITY, is_active=True)
    draft = clone_definition(definition_id=active.pk, user=superuser)

    for url in ("/accounts/login/", "/admin/login/"):
        page.goto(url)
        assert violations(page) == [], url
    log_in(superuser)
    pages = [
        reverse("runs:dashboard"),
        reverse("runs:session", args=[session_id]),
        reverse("runs:session_log", args=[session_id]),
        reverse("audit:history"),
        reverse("audit:logs"),
        reverse("audit:lookup") + f"?entity={ENTITY}&key=1",
        reverse("audit:quarantine"),
        reverse("mappings:list"),
        reverse("mappings:detail", args=[active.pk]),
        reverse("mappings:edit", args=[draft.pk]),
        reverse("mappings:preview", args=[active.pk]),
        reverse("mappings:diff", args=[ENTITY]),
        reverse("mappings:import"),
        reverse("django_rq:home"),
        *admin_pages(superuser),
    ]
    opened = 0
    for url in pages:
        response = page.goto(url)
        assert response is not None and response.status == 200, (url, response and response.status)
        page.wait_for_load_state("load")
        assert violations(page) == [], url
        opened += 1
    assert blocked == []
    assert MigrationStatus.objects.count() == 1
    record(
        "web",
        "Content-Security-Policy on every page",
        tried=opened + 2,
        held=opened + 2,
        outcome="no inline script, inline style or foreign source blocked in Chromium",
    )


def test_htmx_works_under_the_policy(watched, superuser, log_in, people):
    page, blocked = watched
    log_in(superuser)
    assert page.evaluate("htmx.config.includeIndicatorStyles") is False
    assert page.evaluate("htmx.config.allowEval") is False
    # The analysis is an htmx POST that swaps its result into the page, with an indicator.
    page.click("button[name=analyze]")
    expect(page.locator("#analysis table.analysis-table")).to_be_visible()
    expect(page.locator("#analysis")).to_contain_text(ENTITY)
    assert violations(page) == []
    assert blocked == []
