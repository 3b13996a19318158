"""Settings from the environment (CONTRACT.md §1): production refuses to start half-configured."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.embedded


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DIFFMIG_"))}
    environ.pop("DATABASE_URL", None)
    environ.pop("DEBUG", None)
    environ.pop("SECRET_KEY", None)
    environ["DIFFMIG_SQLITE_ROOT"] = str(ROOT / "var")
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


def test_the_embedded_default_says_debug_is_on():
    result = manage("check")
    assert result.returncode == 0
    assert "diffmig.W001" in result.stderr + result.stdout


def test_the_cli_prints_one_line_not_a_traceback_for_an_unknown_session():
    result = manage("diffmig", "status", "12345678")
    assert result.returncode == 4
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
