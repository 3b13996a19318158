"""The ``diffmig`` console script: ``diffmig <subcommand> …`` from any folder, with no
virtualenv to activate (``.venv/bin/diffmig run``).

Declared in pyproject.toml as ``diffmig = "migrationsapp.cli.console:main"``. It runs the
``diffmig`` management command (docs/cli.md) with the project's settings, as
``python manage.py diffmig …`` does in the project folder: the same subcommands, options,
output and exit codes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``diffmig ARGS``; ``argv`` defaults to the process's own arguments."""
    # The settings module lives next to manage.py; a current folder elsewhere must not matter.
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "diffmig.settings")
    from diffmig.startup import run_command

    arguments = sys.argv[1:] if argv is None else list(argv)
    # Django's own argv: program name, then the management command the script stands for.
    run_command(["diffmig", "diffmig", *arguments])
