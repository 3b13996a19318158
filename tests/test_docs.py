"""The README documents every setting of CONTRACT.md §1 and every `diffmig` subcommand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import load_command_class

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

CONTRACT_SETTINGS = [
    "DATABASE_URL",
    "REDIS_URL",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DIFFMIG_FERNET_KEYS",
    "DIFFMIG_ALLOWED_DB_HOSTS",
    "DIFFMIG_SQLITE_ROOT",
]


def settings_read_from_environment() -> set[str]:
    names = set()
    for path in (ROOT / "diffmig").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'env_(?:str|bool|list|int)\(\s*"([A-Z_]+)"', text))
    return names


@pytest.mark.parametrize("name", CONTRACT_SETTINGS)
def test_contract_setting_is_in_readme(name):
    assert f"`{name}`" in README


def test_every_setting_the_code_reads_is_in_readme():
    names = settings_read_from_environment()
    assert set(CONTRACT_SETTINGS) <= names
    assert [n for n in sorted(names) if f"`{n}`" not in README] == []


def test_every_diffmig_subcommand_is_in_readme():
    command = load_command_class("migrationsapp", "diffmig")
    parser = command.create_parser("manage.py", "diffmig")
    subparsers = next(a for a in parser._actions if a.dest == "command")
    names = list(subparsers.choices)
    assert "run" in names
    missing = [n for n in names if not re.search(rf"`{n}\b", README)]
    assert missing == []


def test_readme_shows_the_two_setup_commands():
    assert "make demo" in README
    assert "make test" in README
