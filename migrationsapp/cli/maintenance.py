"""`diffmig cleanup` (the retention policy) and `diffmig watchdog` (for deployments whose
workers do not run it, or to run one round by hand)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.db import connections

from migrationsapp.cli.output import EXIT_OK, Output, Subcommand
from migrationsapp.selectors.workers import runs_in_workers
from migrationsapp.services import retention, watchdog


def add_cleanup_arguments(parser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="only count what would go")


def cleanup(options: dict[str, Any], out: Output) -> int:
    report = retention.apply_retention(dry_run=options["dry_run"])
    verb = "would delete" if report.dry_run else "deleted"
    out.line(
        f"retention at {report.now:%Y-%m-%d %H:%M} UTC: logs and record events "
        f"{retention.LOG_DAYS} days, checkpoints of finished sessions "
        f"{retention.CHECKPOINT_DAYS} days, analyses {retention.ANALYSIS_DAYS} days; "
        "sessions are kept"
    )
    out.table(["table", verb], [[table, n] for table, n in report.deleted.items()])
    if report.dry_run:
        out.line(f"{report.total} rows would be deleted (dry run: nothing was deleted)")
    else:
        out.line(f"{report.total} rows deleted")
    return EXIT_OK


def add_watchdog_arguments(parser) -> None:
    parser.add_argument("--once", action="store_true", help="one round, then exit")


def run_watchdog(options: dict[str, Any], out: Output) -> int:
    if not runs_in_workers():
        out.line(
            "REDIS_URL is not set: runs execute in-process and there is nothing to watch; "
            "resume a session whose process died with `diffmig resume SESSION`."
        )
        return EXIT_OK
    stop = threading.Event()
    if not options["once"]:
        # SIGTERM (and ^C) end the loop between two rounds, never inside one.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    while True:
        report = watchdog.check()
        out.line(
            f"watchdog: {len(report.expired)} lease(s) taken over, {len(report.failed)} "
            f"entity run(s) failed, {len(report.dispatched)} job(s) dispatched"
        )
        for label in report.expired:
            out.line(f"  taken over: {label}")
        for label in report.failed:
            out.line(f"  failed (out of attempts): {label}")
        for label in report.started:
            out.line(f"  started (its launcher never did): {label}")
        connections.close_all()
        if options["once"] or stop.wait(settings.DIFFMIG_WATCHDOG_INTERVAL):
            return EXIT_OK


COMMANDS = [
    Subcommand(
        "cleanup",
        "apply the retention policy (logs and record events 90 days; checkpoints of finished "
        "sessions and analyses 30 days; sessions kept)",
        "diffmig cleanup --dry-run",
        add_cleanup_arguments,
        cleanup,
    ),
    Subcommand(
        "watchdog",
        "with REDIS_URL: take over units whose worker died and re-dispatch lost ones, every "
        "DIFFMIG_WATCHDOG_INTERVAL seconds (--once: one round)",
        "diffmig watchdog --once",
        add_watchdog_arguments,
        run_watchdog,
    ),
]
