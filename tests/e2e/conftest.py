"""Browser tests: Playwright (Python) driving Debian's Chromium against pytest-django's live server.

Never a downloaded browser: ``/usr/bin/chromium`` (apt's ``chromium``) or the tests skip,
saying so. The live server runs in a thread of this process, so a session launched from a
page executes in another thread here too, against the same test database; each test stops
what it started before the database is flushed.

Screenshots of every page go to ``test-artifacts/screenshots/`` (ignored by git). The two
that the README shows are copied to ``docs/screenshots/`` when they are missing there, or on
every run with ``DIFFMIG_UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from migrationsapp.engine.errors import DiffmigError
from migrationsapp.models import MigrationStatus
from migrationsapp.roles import ROLE_PERMISSIONS
from migrationsapp.selectors.progress import ACTIVE_SESSION
from migrationsapp.services.runs import request_cancel
from tests.factories import USER_PASSWORD
from tests.support.roles import role_group

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (never `playwright install`)")
    # Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a
    # thread with a running loop unless told that this is safe (it is: nothing here is async).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 860}, locale="en-US"
    )
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(autouse=True)
def _roles(transactional_db) -> None:
    """The role groups, as the data migration makes them (a flush empties them)."""
    for name in ROLE_PERMISSIONS:
        role_group(name)


@pytest.fixture(autouse=True)
def _stop_sessions(live_server) -> Iterator[None]:
    """After a test, cancel what still runs and wait for its threads, before the flush."""
    yield
    for session_id in MigrationStatus.objects.filter(overall_status__in=ACTIVE_SESSION).values_list(
        "migration_session_id", flat=True
    ):
        with contextlib.suppress(DiffmigError):  # it finished meanwhile
            request_cancel(session_id=session_id, user="e2e teardown")
    for thread in threading.enumerate():
        if thread.name.startswith("diffmig-"):
            thread.join(timeout=30)


@pytest.fixture
def log_in(page) -> Callable:
    def _log_in(user, *, next_url: str = "/") -> None:
        page.goto(f"/accounts/login/?next={next_url}")
        page.fill("#id_username", user.get_username())
        page.fill("#id_password", USER_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"**{next_url}")

    return _log_in


@pytest.fixture
def shoot() -> Callable:
    """Save a full-page screenshot; ``docs=NAME`` also feeds the README's copy."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def _shoot(page, name: str, *, docs: str | None = None) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if docs:
            target = DOCS_SCREENSHOTS / f"{docs}.png"
            if not target.exists() or os.environ.get("DIFFMIG_UPDATE_SCREENSHOTS") == "1":
                DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        return path

    return _shoot
