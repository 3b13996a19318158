"""Settings from the environment (docs/settings.md): production refuses to start half-configured."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.reliability import record

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.embedded


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DIFFMIG_"))}
    environ.pop("DATABASE_URL", None)
    environ.pop("DEBUG", None)
    environ.pop("SECRET_KEY", None)
    environ["DIFFMIG_SQLITE_ROOT"] = str(ROOT / "var" / "databases")
    environ.update(env)
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=ROOT,
        timeout=120,
    )


def production_env() -> dict[str, str]:
    return {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "DIFFMIG_FERNET_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "ALLOWED_HOSTS": "diffmig.example.org",
    }


def test_check_deploy_has_no_warning_in_production():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DIFFMIG_FERNET_KEYS"])
def test_production_refuses_to_start_without_its_secrets(missing):
    env = production_env()
    env.pop(missing)
    result = manage("check", **env)
    assert result.returncode != 0
    assert f"{missing} is required when DEBUG=0" in result.stderr


def test_the_embedded_default_warns_that_development_keys_serve():
    result = manage("check")
    assert result.returncode == 0
    output = result.stderr + result.stdout
    assert "diffmig.W001" in output
    assert "DEBUG is not set: development mode" in output


# Run in the subprocess by `manage.py shell -c`: the project's URLs plus one view that fails
# with the secret key in its message, requested through the whole middleware stack.
FAILING_REQUEST = """
import sys, types
from django.conf import settings
from django.test import Client
from django.urls import include, path

def fail(request):
    raise RuntimeError("failure-marker " + settings.SECRET_KEY)

urls = types.ModuleType("failing_urls")
urls.urlpatterns = [path("fail/", fail), path("", include("diffmig.urls"))]
sys.modules["failing_urls"] = urls
settings.ROOT_URLCONF = "failing_urls"
response = Client(raise_request_exception=False).get("/fail/", HTTP_HOST=HOST, secure=True)
print(response.status_code)
print(response.content.decode())
"""


def failing_request(host: str, **env: str) -> tuple[int, str]:
    result = manage("shell", "--no-imports", "-c", f"HOST = {host!r}\n" + FAILING_REQUEST, **env)
    assert result.returncode == 0, result.stderr
    status, _, page = result.stdout.partition("\n")
    return int(status), page


@pytest.mark.parametrize(
    ("mode", "env"),
    [
        ("unset", {}),
        ("DEBUG=0", production_env()),
        ("DEBUG=no", {**production_env(), "DEBUG": "no"}),
    ],
)
def test_without_debug_a_server_error_is_the_plain_500_page(mode, env):
    host = env.get("ALLOWED_HOSTS", "localhost")
    status, page = failing_request(host, **env)
    assert status == 500
    assert "<h1>Server Error (500)</h1>" in page, mode
    assert "failure-marker" not in page
    assert "Traceback" not in page


def test_debug_1_shows_the_debug_page_to_its_developer():
    status, page = failing_request("localhost", DEBUG="1")
    assert status == 500
    assert "failure-marker" in page
    assert "Traceback" in page
    record(
        "secrets",
        "server error without DEBUG set",
        tried=4,
        held=4,
        outcome="plain 500 page; the debug page (settings, secrets) only with DEBUG=1",
    )


SHOW_SETTINGS = (
    "from django.conf import settings; print(settings.DEBUG, settings.SESSION_COOKIE_SECURE, "
    "settings.SECURE_SSL_REDIRECT, settings.SECRET_KEY.startswith('dev-only'))"
)


def test_debug_unset_is_development_without_the_debug_page():
    result = manage("shell", "--no-imports", "-c", SHOW_SETTINGS)
    assert result.returncode == 0, result.stderr
    # No debug page, but plain-HTTP cookies and no HTTPS redirect: the local server works.
    assert result.stdout.split() == ["False", "False", "False", "True"]


def test_debug_0_is_production():
    result = manage("shell", "--no-imports", "-c", SHOW_SETTINGS, **production_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True", "False"]


def test_the_cli_prints_one_line_not_a_traceback_for_an_unknown_session():
    result = manage("diffmig", "status", "12345678")
    assert result.returncode == 4
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
