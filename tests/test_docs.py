"""The reference in docs/ (and the README's overview) says what the code does.

Every list here comes from the code, not from a hand list that could drift: the function
library's registry and signatures, the mapping file's keys, the argument parser's
subcommands and options, the ``--json`` documents of a real run, the environment variables
the code reads. The examples of the function library are evaluated, and internal links are
followed.
"""

from __future__ import annotations

import inspect
import json
import re
import sqlite3
from pathlib import Path

import pytest
from django.core.management import load_command_class

from migrationsapp.cli import output
from migrationsapp.engine import expressions, patterns
from migrationsapp.engine.convert import KINDS
from migrationsapp.engine.errors import ExpressionError
from migrationsapp.engine.mapping import (
    CONNECTION_KEYS,
    DELETE_POLICIES,
    DETECTIONS,
    ENTITY_KEYS,
    FIELD_KEYS,
    RULE_KEYS,
    TOP_KEYS,
    load_mapping_yaml,
)
from migrationsapp.engine.transforms import BUILTIN_FUNCTIONS, compile_expression, compile_functions
from migrationsapp.engine.validation import RULES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = ("mapping.md", "cli.md", "settings.md", "architecture.md")


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def without_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def section(text: str, heading: str) -> str:
    """The text under the first heading that contains ``heading``, up to the next heading
    of the same or a higher level."""
    lines = text.splitlines()
    for start, line in enumerate(lines):
        match = re.match(r"(#+) ", line)
        if match and heading in line:
            level = len(match.group(1))
            end = next(
                (
                    i
                    for i in range(start + 1, len(lines))
                    if (m := re.match(r"(#+) ", lines[i])) and len(m.group(1)) <= level
                ),
                len(lines),
            )
            return "\n".join(lines[start:end])
    raise AssertionError(f"no heading with {heading!r}")


# --- the mapping file and the function library ---------------------------------------------


def signature_text(name: str) -> str:
    """``map(v, mapping, default=None)``: a library function's signature as users write it."""
    parts = []
    for parameter in inspect.signature(BUILTIN_FUNCTIONS[name]).parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            parts.append(f"*{parameter.name}")
        elif parameter.default is not parameter.empty:
            parts.append(f"{parameter.name}={parameter.default!r}")
        else:
            parts.append(parameter.name)
    return f"{name}({', '.join(parts)})"


EXAMPLE = re.compile(
    r"^\s*- `(?P<expression>.+?)` → "
    r"(?:`(?P<value>.+)`|fails the row: (?P<fails>.+)|refused at import: (?P<refused>.+))$"
)


def mapping_examples() -> list[re.Match[str]]:
    return [m for line in page("mapping.md").splitlines() if (m := EXAMPLE.match(line))]


@pytest.mark.parametrize("name", sorted(BUILTIN_FUNCTIONS))
def test_every_library_function_is_documented_with_its_signature(name):
    text = section(page("mapping.md"), f"### `{signature_text(name)}`")
    for part in ("**Null:**", "**Fails the row:**", "**Examples:**"):
        assert part in text, f"{name}: no {part} in its section"
    examples = [m["expression"] for m in map(EXAMPLE.match, text.splitlines()) if m]
    assert any(e.startswith(f"{name}(") for e in examples), f"{name}: no example calls it"


@pytest.mark.parametrize("example", mapping_examples(), ids=lambda m: m["expression"])
def test_the_examples_of_the_mapping_reference_hold(example):
    text = example["expression"]
    try:
        value = compile_expression(text, compile_functions({})).evaluate({})
    except ExpressionError as error:
        # A call made only of constants is computed at import: a failure shows there.
        message = str(error)
        if example["fails"] is not None:
            assert f"always fails: {example['fails']}" in message
        else:
            assert example["refused"] is not None, f"{text} was refused: {message}"
            assert "always fails" not in message and example["refused"] in message, message
        return
    assert example["value"] is not None, f"{text} gives {value!r}"
    assert repr(value) == example["value"]


def test_the_mapping_reference_has_examples_of_the_language_and_its_refusals():
    examples = mapping_examples()
    assert len(examples) > len(BUILTIN_FUNCTIONS)
    assert any(m["refused"] for m in examples)
    assert any(m["fails"] for m in examples)


@pytest.mark.parametrize(
    "key", sorted({*TOP_KEYS, *CONNECTION_KEYS, *ENTITY_KEYS, *FIELD_KEYS, *RULE_KEYS})
)
def test_every_key_of_the_mapping_file_is_in_a_table(key):
    assert f"| `{key}` |" in page("mapping.md")


def test_every_enumeration_rule_and_column_kind_is_documented():
    text = page("mapping.md")
    for word in (*DETECTIONS, *DELETE_POLICIES, *RULES):
        assert f"`{word}`" in text, word
    conversion = section(text, "## Type conversion")
    assert [k for k in KINDS if f"| `{k}`" not in conversion] == []


def test_the_complete_example_file_passes_the_importers_checks():
    blocks = re.findall(r"^```yaml\n(.*?)^```", page("mapping.md"), flags=re.S | re.M)
    complete = [b for b in blocks if b.startswith("version: 1")]
    assert complete, "docs/mapping.md has no complete file (a yaml block starting version: 1)"
    mapping = load_mapping_yaml(complete[0])  # every check that needs no database
    assert len(mapping.entities) >= 2


def test_the_documented_limits_are_the_codes():
    text = page("mapping.md")
    rows = re.findall(r"^\|[^|]+\| ([^|]+) \| `(MAX_[A-Z_]+)` \|$", text, flags=re.M)
    assert len(rows) >= 4
    for cell, constant in rows:
        numbers = [int(n) for n in re.findall(r"[0-9]+", cell.replace(",", ""))]
        assert getattr(expressions, constant) in numbers, (constant, cell)
    for value in (patterns.MAX_PATTERN_LENGTH, patterns.REPLACE_SCAN_LIMIT):
        assert f"{value:,}" in text or str(value) in text


# --- the command line --------------------------------------------------------------------------


def diffmig_parser():
    command = load_command_class("migrationsapp", "diffmig")
    return command.create_parser("manage.py", "diffmig")


def subparsers_of(parser) -> dict:
    action = next((a for a in parser._actions if a.choices and not a.option_strings), None)
    if action is None or not isinstance(action.choices, dict):
        return {}
    return dict(action.choices)


def documented_commands() -> list[tuple[str, object]]:
    """(label, parser) of every subcommand, with the actions of those that have some."""
    commands = []
    for name, parser in subparsers_of(diffmig_parser()).items():
        actions = subparsers_of(parser)
        if actions:
            commands += [(f"{name} {action}", sub) for action, sub in actions.items()]
            continue
        fixed = next(
            (a for a in parser._actions if not a.option_strings and isinstance(a.choices, list)),
            None,
        )
        if fixed is not None:  # `connections test`
            commands += [(f"{name} {choice}", parser) for choice in fixed.choices]
        else:
            commands.append((name, parser))
    return commands


def test_the_cli_has_the_subcommands_the_docs_test_walks():
    labels = [label for label, _ in documented_commands()]
    assert {"run", "mappings import", "connections test", "worker"} <= set(labels)


@pytest.mark.parametrize("label,parser", documented_commands(), ids=lambda v: str(v))
def test_every_subcommand_and_its_options_are_in_cli_md(label, parser):
    text = without_code_blocks(page("cli.md"))
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    heading = next((h for h in headings if f"`{label}`" in h), None)
    assert heading is not None, f"docs/cli.md has no `## ` heading naming `{label}`"
    body = section(page("cli.md"), heading)
    options = [o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help")]
    assert [o for o in options if f"`{o}" not in body] == []


def test_every_exit_code_is_in_cli_md():
    table = section(page("cli.md"), "## Exit codes")
    codes = [getattr(output, n) for n in dir(output) if n.startswith("EXIT_")]
    assert sorted(codes) == [0, 1, 2, 3, 4]
    assert [c for c in codes if f"| {c} |" not in table] == []


# Keys whose children are names (entities, columns), not keys of the document.
NAME_MAPS = {"entities", "errors", "source", "destination"}
# Keys whose values are a log entry's data, shaped by the code that wrote it (documented as such).
LOG_DATA = {"context", "error_details"}


def json_keys(document, *, names: bool = False) -> set[str]:
    keys: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if not names:
                keys.add(key)
            if not names and key in LOG_DATA:
                continue
            keys |= json_keys(value, names=not names and key in NAME_MAPS)
    elif isinstance(document, list):
        for item in document:
            keys |= json_keys(item)
    return keys


@pytest.fixture
def clinic_documents(tmp_path, settings, monkeypatch):
    """The `--json` documents of a small real run of the demo clinic, on SQLite files."""
    from migrationsapp.models import QuarantinedRecord, RecordMap
    from tests.integration.conftest import cli
    from tests.support.sqlite_clinic import build_sqlite_clinic

    settings.DIFFMIG_SQLITE_ROOT = tmp_path
    settings.REDIS_URL = None  # the run executes in this process
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", "")
    monkeypatch.setenv("DIFFMIG_TARGET_URL", "")
    clinic = build_sqlite_clinic(tmp_path)

    def document(*args: str, code: int = 0) -> dict:
        result = cli(*args, "--json")
        assert result.code == code, (args, result.err)
        return json.loads(result.out)

    analysis = document("analyze")
    session = document("run")
    status = document("status")
    # A destination value changed behind diffmig's back: verify lists a difference.
    target = sqlite3.connect(clinic.target_url.removeprefix("sqlite:///"))
    with target:
        target.execute("UPDATE doctor SET full_name = 'Changed Behind' WHERE rowid = 1")
    target.close()
    verify = document("verify", code=1)
    preview = document("mappings", "preview", "doctor", "--limit", "50")
    quarantined = QuarantinedRecord.objects.filter(resolved_at__isnull=True).first()
    migrated = RecordMap.objects.first()
    lookups = [
        document("lookup", record.entity_type, record.legacy_key_text)
        for record in (quarantined, migrated)
    ]
    logs = document("logs", session["session"]["id"])
    assert "entity.analyzed" in {entry["action"] for entry in logs["entries"]}
    return {
        "Session document": [session, status],
        "`analyze --json`": [analysis],
        "`verify --json`": [verify],
        "`mappings preview --json`": [preview],
        "`lookup --json`": [*lookups],
        "`logs --json`": [logs],
    }


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_every_key_of_the_json_documents_is_in_cli_md(clinic_documents):
    reference = section(page("cli.md"), "## The `--json` documents")
    seen: set[str] = set()
    for heading, documents in clinic_documents.items():
        text = section(reference, f"### {heading}")
        keys = set().union(*(json_keys(d) for d in documents))
        seen |= keys
        # In a table of the document's own section: `key`, or `parent.*.key`.
        missing = sorted(k for k in keys if not re.search(rf"[`.]{re.escape(k)}`", text))
        assert missing == [], f"{heading}: keys not documented in docs/cli.md: {missing}"
    # The run exercised the keys that appear only on failures and differences.
    assert {"different", "error", "reason", "quarantine", "field", "rule"} <= seen


# --- settings ------------------------------------------------------------------------------------

READS = re.compile(r'(?:env_(?:str|bool|list|int)\(|environ\.get\(|getenv\()\s*"([A-Z][A-Z0-9_]+)"')
# Set by pytest itself, not settings of diffmig.
NOT_SETTINGS = ("PYTEST_",)


def environment_reads() -> set[str]:
    names: set[str] = set()
    for folder in ("diffmig", "migrationsapp", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(READS.findall(path.read_text(encoding="utf-8")))
    return {n for n in names if not n.startswith(NOT_SETTINGS)}


def test_every_variable_the_code_reads_is_in_settings_md():
    names = environment_reads()
    assert {"DATABASE_URL", "REDIS_URL", "DIFFMIG_LEGACY_URL", "DIFFMIG_TEST_MYSQL_URL"} <= names
    text = page("settings.md")
    assert [n for n in sorted(names) if f"| `{n}` |" not in text] == []


def test_the_defaults_in_settings_md_are_the_codes():
    text = page("settings.md")
    code = (ROOT / "diffmig" / "settings.py").read_text(encoding="utf-8")
    defaults = re.findall(r'env_(?:int|list)\(\s*"([A-Z_]+)",\s*"?([^")]+)"?\)', code)
    assert len(defaults) >= 8
    for name, default in defaults:
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}` |")), "")
        if default.strip():
            assert f"`{default.replace('_', '')}`" in row, (name, default, row)


# --- pointers and links -------------------------------------------------------------------------


def test_code_points_at_the_docs_not_at_a_file_outside_the_repository():
    outside = re.compile("CONTRACT" + r"(?:\.md)? ?§")
    found = []
    for folder in ("diffmig", "migrationsapp", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if outside.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}")
    assert found == []


# Pages that a command writes rather than a person (`make reliability`).
GENERATED_PAGES = {"reliability.md"}


def test_every_docs_page_the_code_names_exists():
    named = set()
    for folder in ("diffmig", "migrationsapp", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            named |= set(re.findall(r"docs/([a-z_]+\.md)", path.read_text(encoding="utf-8")))
    assert named, "the code points at no page of docs/"
    missing = [n for n in sorted(named - GENERATED_PAGES) if not (DOCS / n).exists()]
    assert missing == []


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    return {
        slug(line.lstrip("#")) for line in without_code_blocks(text).splitlines() if line[:1] == "#"
    }


@pytest.mark.parametrize("name", PAGES)
def test_the_links_of_each_docs_page_resolve(name):
    text = without_code_blocks(page(name))
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        file = (DOCS / path) if path else DOCS / name
        unknown_anchor = (
            file.exists()
            and bool(anchor)
            and file.suffix == ".md"
            and anchor not in anchors(file.read_text("utf-8"))
        )
        if not file.exists() or unknown_anchor:
            broken.append(target)
    assert broken == []


# --- the README's overview -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "DATABASE_URL",
        "REDIS_URL",
        "DEBUG",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "DIFFMIG_FERNET_KEYS",
        "DIFFMIG_ALLOWED_DB_HOSTS",
        "DIFFMIG_SQLITE_ROOT",
    ],
)
def test_the_outside_contracts_settings_are_in_the_readme(name):
    assert f"`{name}`" in README


def test_every_diffmig_subcommand_is_in_readme():
    names = list(subparsers_of(diffmig_parser()))
    assert "run" in names
    assert [n for n in names if not re.search(rf"`{n}\b", README)] == []


def test_readme_shows_the_two_setup_commands():
    assert "make demo" in README
    assert "make test" in README
