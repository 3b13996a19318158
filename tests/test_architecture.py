"""The layers of docs/architecture.md hold in the code: the engine imports no Django, only
``migrationsapp/queue`` imports rq or django-rq (diffmig/settings.py and urls.py configure
them), and every module the page's layer table names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "migrationsapp"
# The rows of the layer table whose modules are files of the folder of that name (the entry
# points' row names folders).
LAYERS = ("services", "selectors", "queue", "engine")


def imported_modules(path: Path) -> set[str]:
    """The top-level packages a module imports (relative imports excluded)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def app_modules() -> list[Path]:
    return sorted(p for p in APP.rglob("*.py") if "migrations" not in p.relative_to(APP).parts)


def test_only_the_queue_package_imports_rq_or_django_rq():
    importers = sorted(
        str(path.relative_to(APP))
        for path in app_modules()
        if imported_modules(path) & {"rq", "django_rq"}
    )

    assert importers == ["queue/port.py", "queue/worker.py"]


def test_the_engine_imports_no_django():
    importers = sorted(
        str(path.relative_to(APP))
        for path in (APP / "engine").rglob("*.py")
        if imported_modules(path) & {"django", "rq", "django_rq", "redis"}
    )

    assert importers == []


def test_every_module_the_layer_table_names_exists():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = {}
    for line in text.splitlines():
        row = re.match(r"\| (\w+) \| (.*) \|$", line)
        if row and row.group(1) in LAYERS:
            folder = APP / row.group(1)
            for module in re.findall(r"`(\w+\.py)`", row.group(2)):
                # A module of a package the row names (`runs/` (`launch.py` …)) counts too.
                named[f"{row.group(1)}/{module}"] = any(folder.rglob(module))

    assert len(named) > 60
    assert [module for module, exists in named.items() if not exists] == []
