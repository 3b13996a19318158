"""Every subcommand of `diffmig`, in the order `--help` lists them."""

from __future__ import annotations

from migrationsapp.cli import (
    analyze,
    connections,
    maintenance,
    mappings,
    records,
    sessions,
    verify,
    worker,
)
from migrationsapp.cli.output import Subcommand

SUBCOMMANDS: list[Subcommand] = [
    *connections.COMMANDS,
    *mappings.COMMANDS,
    *analyze.COMMANDS,
    *sessions.COMMANDS,
    *records.COMMANDS,
    *verify.COMMANDS,
    *maintenance.COMMANDS,
    *worker.COMMANDS,
]
