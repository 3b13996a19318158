"""Every execution-log entry the code writes says what happened: each ``log_event`` call
passes an ``action`` (``AuditAction``), so the log browser's action filter misses nothing."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "migrationsapp"


def log_event_calls_without_action() -> list[str]:
    missing = []
    for path in sorted(APP.rglob("*.py")):
        if "migrations" in path.relative_to(APP).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name == "log_event" and "action" not in {k.arg for k in node.keywords}:
                missing.append(f"{path.relative_to(APP)}:{node.lineno}")
    return missing


def test_every_log_event_call_names_its_action():
    assert log_event_calls_without_action() == []


def test_the_check_finds_log_event_calls_at_all():
    calls = 0
    for path in APP.rglob("*.py"):
        calls += path.read_text(encoding="utf-8").count("log_event(")
    assert calls > 20
