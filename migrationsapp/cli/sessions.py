"""`diffmig run | status | pause | resume | cancel`."""

from __future__ import annotations

from typing import Any

from migrationsapp.cli import arguments
from migrationsapp.cli.output import EXIT_OK, Output, Subcommand, session_exit_code
from migrationsapp.cli.progress import progress_bars, wanted
from migrationsapp.engine.ports import DEFAULT_BATCH_SIZE
from migrationsapp.models import MigrationStatus
from migrationsapp.models.choices import SessionStatus
from migrationsapp.selectors.sessions import get_session, session_document
from migrationsapp.services import runs


def add_run_arguments(parser) -> None:
    parser.add_argument("--entity", action="append", dest="entities", metavar="E")
    parser.add_argument("--baseline", action="store_true", help="send every source row again")
    parser.add_argument("--dry-run", action="store_true", help="write nothing")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N")
    parser.add_argument(
        "--max-delete-share",
        type=arguments.share,
        default=None,
        metavar="X",
        help="refuse an entity whose deletes exceed this share (0 to 1) of its migrated records",
    )
    parser.add_argument(
        "--timestamp-overlap",
        type=arguments.seconds,
        default=None,
        metavar="SECONDS",
        help="detection timestamp/hybrid: how far the window reaches back before the cursor "
        "(default 300; 0 cuts strictly after the cursor's (timestamp, key))",
    )
    parser.add_argument("--wait", action="store_true", help="follow the session to its end")
    parser.add_argument("--json", action="store_true")


def run_session(options: dict[str, Any], out: Output) -> int:
    run_options = runs.RunOptions(
        baseline=options["baseline"],
        dry_run=options["dry_run"],
        batch_size=options["batch_size"],
        max_delete_share=options["max_delete_share"],
        timestamp_overlap_s=options["timestamp_overlap"],
    )

    def launched(session: MigrationStatus) -> None:
        if not options["json"]:
            out.line(f"session {session.migration_session_id}")

    # Executed here without workers (so the command waits with or without --wait); with
    # REDIS_URL the first units are enqueued now (Redis down: exit 4), --wait follows them.
    with progress_bars(wanted(options)) as bars:
        started = runs.start_run(
            entities=options["entities"],
            options=run_options,
            user="cli",
            wait=options["wait"],
            observer=bars,
            launched=launched,
        )
    return _report(started, options, out)


def _report(started: runs.StartedRun, options: dict[str, Any], out: Output) -> int:
    """The session document and its exit code once the session ran here or was followed to
    its stop (--wait); for a session left to the workers, the document with --json only."""
    followed = started.executor == runs.Executor.HERE or options.get("wait")
    document = session_document(started.session)
    if options.get("json"):
        out.json(document)
    elif followed:
        out.session(document)
    return session_exit_code(started.session) if followed else EXIT_OK


def add_status_arguments(parser) -> None:
    parser.add_argument("session", nargs="?")
    parser.add_argument("--json", action="store_true")


def status(options: dict[str, Any], out: Output) -> int:
    document = session_document(get_session(options["session"]))
    if options["json"]:
        out.json(document)
    else:
        out.session(document)
        line = stage_line(document["session"])
        if line:
            out.line(line)
    return EXIT_OK


def stage_line(totals: dict[str, Any]) -> str:
    """`stages: read 1.20 s, …, control 0.40 s of 3.10 s (slowest: write)`; "" before any batch."""
    stages = totals.get("stages") or {}
    if not totals.get("batch_seconds"):
        return ""
    parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in stages.items())
    slowest = max(stages, key=stages.__getitem__)
    return f"stages: {parts} of {totals['batch_seconds']:.2f} s (slowest: {slowest})"


def add_session_argument(parser) -> None:
    parser.add_argument("session")


def pause(options: dict[str, Any], out: Output) -> int:
    session = runs.request_pause(session_id=get_session(options["session"]).migration_session_id)
    done = session.overall_status == SessionStatus.PAUSED
    out.line(f"session {session.migration_session_id}: {'paused' if done else 'pause requested'}")
    return EXIT_OK


def cancel(options: dict[str, Any], out: Output) -> int:
    session = runs.request_cancel(session_id=get_session(options["session"]).migration_session_id)
    done = session.overall_status == SessionStatus.CANCELLED
    out.line(
        f"session {session.migration_session_id}: {'cancelled' if done else 'cancel requested'}"
    )
    return EXIT_OK


def resume(options: dict[str, Any], out: Output) -> int:
    session_id = get_session(options["session"]).migration_session_id

    def resumed(session: MigrationStatus) -> None:
        out.line(f"session {session_id}: resumed")

    # Executed here without workers; with REDIS_URL dispatched to them at once (stale
    # leases included) and not followed.
    with progress_bars(wanted(options)) as bars:
        started = runs.resume_run(session_id=session_id, user="cli", observer=bars, resumed=resumed)
    return _report(started, options, out)


COMMANDS = [
    Subcommand(
        "run",
        "start a migration session over the entities and those they depend on",
        "diffmig run --entity appointment --batch-size 5000 --wait",
        add_run_arguments,
        run_session,
    ),
    Subcommand(
        "status",
        "a session's state, counts, throughput and ETA (default: the latest)",
        "diffmig status --json",
        add_status_arguments,
        status,
    ),
    Subcommand(
        "pause",
        "pause a running session after its current batch",
        "diffmig pause 3f2a9c1e",
        add_session_argument,
        pause,
    ),
    Subcommand(
        "resume",
        "continue a paused or failed session from its checkpoints",
        "diffmig resume 3f2a9c1e",
        add_session_argument,
        resume,
    ),
    Subcommand(
        "cancel",
        "cancel a session; what was written stays",
        "diffmig cancel 3f2a9c1e",
        add_session_argument,
        cancel,
    ),
]
