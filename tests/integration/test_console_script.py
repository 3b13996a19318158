"""The `diffmig` console script: the CLI from any folder without activating the virtualenv, and
printed hints that run as they are printed."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from migrationsapp.cli.registry import SUBCOMMANDS
from migrationsapp.cli.setup_hints import command_prefix

pytestmark = pytest.mark.embedded

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.prefix) / "bin" / "diffmig"


def clean_env(tmp_path: Path) -> dict[str, str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DIFFMIG_", "VIRTUAL_ENV"))
        and k not in {"DATABASE_URL", "DEBUG", "SECRET_KEY", "REDIS_URL"}
    }
    # No activated virtualenv: PATH holds the system's folders only.
    environ["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    environ["DATABASE_URL"] = f"sqlite:///{tmp_path / 'control.sqlite3'}"
    environ["DIFFMIG_SQLITE_ROOT"] = str(tmp_path / "databases")
    return environ


def assert_cli_help(result: subprocess.CompletedProcess, program: str = "diffmig") -> None:
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {program} [-h]"), result.stdout[:200]
    for sub in SUBCOMMANDS:
        assert f"    {sub.name} " in result.stdout
    assert result.stderr == ""


def test_the_console_function_runs_the_cli_from_another_folder(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "from migrationsapp.cli.console import main; main()", "--help"],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )
    assert_cli_help(result)
    # A subcommand's own help names the program as the user typed it.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from migrationsapp.cli.console import main; main()",
            "status",
            "-h",
        ],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: diffmig status ")


@pytest.mark.skipif(
    not SCRIPT.is_file(),
    reason=f"{SCRIPT} is not installed: pyproject.toml's [project.scripts] diffmig entry needs "
    "`pip install -e .` (make reinstalls when pyproject.toml changes)",
)
def test_venv_bin_diffmig_help_works_without_an_activated_virtualenv(tmp_path):
    result = subprocess.run(
        [str(SCRIPT), "--help"],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )
    assert_cli_help(result)


def test_the_printed_command_prefix_runs_as_printed(tmp_path):
    prefix = command_prefix()
    assert "python manage.py" not in prefix or prefix.endswith(" manage.py diffmig")
    result = subprocess.run(
        [*shlex.split(prefix), "--help"],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        cwd=Path.cwd(),
        timeout=120,
    )
    # The console script is `diffmig`; before it is installed, `manage.py diffmig`.
    assert_cli_help(result, "diffmig" if SCRIPT.is_file() else "manage.py diffmig")


def test_no_page_prints_a_manage_py_hint():
    pages = [p for p in (ROOT / "templates").rglob("*.html") if "manage.py" in p.read_text()]
    assert pages == []
