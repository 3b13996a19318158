"""Reads never call writes (docs/architecture.md, layers): no selector imports a service, and
no page imports the admin (a form both use lives in ``migrationsapp/forms``)."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "migrationsapp"


def app_imports(path: Path) -> set[str]:
    """The ``migrationsapp.…`` modules a module imports, relative imports resolved."""
    package = ["migrationsapp", *path.parent.relative_to(APP).parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            # ``from migrationsapp import services`` names the package as an alias.
            found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("migrationsapp.")}


def importers(folder: str, forbidden: str) -> list[str]:
    return sorted(
        str(path.relative_to(APP))
        for path in (APP / folder).rglob("*.py")
        if any(name == forbidden or name.startswith(f"{forbidden}.") for name in app_imports(path))
    )


def test_no_selector_imports_a_service():
    assert importers("selectors", "migrationsapp.services") == []


def test_no_view_imports_the_admin():
    assert importers("views", "migrationsapp.admin") == []


def test_the_check_sees_absolute_and_relative_imports():
    # The rule would pass vacuously if the import reader missed a form of import.
    module = APP / "selectors" / "counts.py"
    assert "migrationsapp.models" in app_imports(module)
    views = APP / "views" / "mappings.py"
    assert "migrationsapp.views.access.permission_required" in app_imports(views)
    assert importers("views", "migrationsapp.services") != []
