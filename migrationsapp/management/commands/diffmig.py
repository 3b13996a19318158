"""`python manage.py diffmig …`: the command line of CONTRACT.md §4.

Each subcommand parses its arguments, calls one service or selector, and prints. Errors
become one line (plus a hint) on stderr and the exit codes of the contract: 0 success,
1 failed or differences, 2 usage error or refused, 3 paused or cancelled, 4 operational.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import sqlalchemy as sa
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError

from migrationsapp.engine.errors import (
    ConfigurationError,
    DiffmigError,
    MappingError,
    TerminalError,
    TransientError,
)
from migrationsapp.engine.ids import decode_key, encode_key
from migrationsapp.models.choices import SessionStatus
from migrationsapp.selectors.logs import format_log_line, parse_level, session_logs
from migrationsapp.selectors.records import record_history
from migrationsapp.selectors.sessions import (
    SessionNotFoundError,
    get_session,
    session_document,
    was_refused,
)
from migrationsapp.services import analysis, mappings, runs
from migrationsapp.services.connectivity import test_connections

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_STOPPED, EXIT_OPERATIONAL = 0, 1, 2, 3, 4

EXAMPLES = {
    "connections": "diffmig connections test",
    "mappings": "diffmig mappings import examples/clinic.yaml --dry-run",
    "analyze": "diffmig analyze --entity patient --json",
    "run": "diffmig run --entity appointment --batch-size 5000 --wait",
    "status": "diffmig status --json",
    "pause": "diffmig pause 3f2a9c1e",
    "resume": "diffmig resume 3f2a9c1e",
    "cancel": "diffmig cancel 3f2a9c1e",
    "logs": "diffmig logs 3f2a9c1e --level warn --entity doctor",
    "lookup": "diffmig lookup appointment 'P-001/2'",
}


class Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class Command(BaseCommand):
    help = "Differential migrations: analyse, run and follow them. See README.md."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

        def sub(name: str, help_text: str) -> CommandParser:
            return commands.add_parser(
                name, help=help_text, description=help_text, epilog=f"example: {EXAMPLES[name]}"
            )

        connections = sub("connections", "check the connections of the active mappings")
        connections.add_argument("action", choices=["test"])

        mapping = sub("mappings", "import or export mapping files")
        mapping_actions = mapping.add_subparsers(dest="action", required=True, metavar="ACTION")
        importer = mapping_actions.add_parser(
            "import",
            help="check and store a mapping file",
            epilog="example: diffmig mappings import examples/clinic.yaml",
        )
        importer.add_argument("file")
        importer.add_argument("--dry-run", action="store_true", help="only check, store nothing")
        exporter = mapping_actions.add_parser(
            "export",
            help="print the active mappings as YAML",
            epilog="example: diffmig mappings export doctor > doctor.yaml",
        )
        exporter.add_argument("entities", nargs="*", metavar="ENTITY")

        analyze = sub("analyze", "find new / modified / deleted / unchanged / retry records")
        analyze.add_argument("--entity", action="append", dest="entities", metavar="E")
        analyze.add_argument("--json", action="store_true")

        run = sub("run", "start a migration session (the entities and those they depend on)")
        run.add_argument("--entity", action="append", dest="entities", metavar="E")
        run.add_argument("--baseline", action="store_true", help="send every source row again")
        run.add_argument("--dry-run", action="store_true", help="write nothing")
        run.add_argument("--batch-size", type=int, default=1000, metavar="N")
        run.add_argument("--max-delete-share", type=float, default=None, metavar="X")
        run.add_argument("--wait", action="store_true", help="follow the session to its end")
        run.add_argument("--json", action="store_true")

        status = sub("status", "a session's state, counts, throughput and ETA")
        status.add_argument("session", nargs="?")
        status.add_argument("--json", action="store_true")

        for name, text in (
            ("pause", "pause a running session after its current batch"),
            ("resume", "continue a paused or failed session from its checkpoints"),
            ("cancel", "cancel a session; what was written stays"),
        ):
            control = sub(name, text)
            control.add_argument("session")

        logs = sub("logs", "the execution log of a session")
        logs.add_argument("session")
        logs.add_argument("--level", help="threshold: debug, info, warn, error")
        logs.add_argument("--entity")
        logs.add_argument("--follow", action="store_true", help="keep printing new entries")

        lookup = sub("lookup", "a record's destination UUID and history")
        lookup.add_argument("entity")
        lookup.add_argument("key", help="the legacy key as text: 42, 1007/3, NEW\\/ 1,2")
        lookup.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        command = options["command"]
        try:
            code = getattr(self, f"cmd_{command}")(options)
        except Exit as stop:
            code = stop.code
        except SessionNotFoundError as error:
            code = self.fail(error, EXIT_OPERATIONAL)
        except (TransientError, sa.exc.OperationalError, DatabaseError) as error:
            code = self.fail(error, EXIT_OPERATIONAL)
        except MappingError as error:
            code = self.fail(error, EXIT_REFUSED, prefix="mapping refused:\n  ")
        except (TerminalError, DiffmigError) as error:
            code = self.fail(error, EXIT_REFUSED)
        except KeyboardInterrupt:
            code = self.fail(Exception("interrupted"), EXIT_STOPPED)
        if code:
            sys.exit(code)

    # -- output helpers ----------------------------------------------------------------------

    def fail(self, error: Exception, code: int, prefix: str = "") -> int:
        text = str(error)
        if isinstance(error, MappingError):
            text = "\n  ".join(str(p) for p in error.problems)
        self.stderr.write(f"error: {prefix}{text}")
        hint = getattr(error, "hint", "")
        if hint:
            self.stderr.write(f"hint: {hint}")
        return code

    def emit_json(self, document: Any) -> None:
        self.stdout.write(json.dumps(document, indent=2, default=str))

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
        for row in [headers, *rows]:
            self.stdout.write("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)))

    # -- subcommands ---------------------------------------------------------------------------

    def cmd_connections(self, options: dict[str, Any]) -> int:
        results = test_connections()
        if not results:
            self.stderr.write("error: no connection is configured")
            self.stderr.write("hint: import a mapping file first: diffmig mappings import FILE")
            return EXIT_REFUSED
        code = EXIT_OK
        for result in results:
            if result.ok:
                self.stdout.write(f"{result.name}: ok  {result.server}  ({result.url})")
            else:
                self.stdout.write(f"{result.name}: FAILED  {result.error}  ({result.url})")
                code = EXIT_OPERATIONAL
        return code

    def cmd_mappings(self, options: dict[str, Any]) -> int:
        if options["action"] == "export":
            self.stdout.write(
                mappings.export_mapping_text(entities=options["entities"] or None), ending=""
            )
            return EXIT_OK
        path = options["file"]
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as error:
            raise ConfigurationError(f"cannot read {path}: {error.strerror}") from error
        result = mappings.import_mapping_text(text=text, dry_run=options["dry_run"])
        verb = "would store" if result.dry_run else "stored"
        for entity, version in result.created:
            self.stdout.write(f"{entity}: {verb} as version {version} (active)")
        for entity, version in result.unchanged:
            self.stdout.write(f"{entity}: unchanged (version {version})")
        if result.dry_run:
            self.stdout.write("mapping is valid; nothing stored (--dry-run)")
        return EXIT_OK

    def cmd_analyze(self, options: dict[str, Any]) -> int:
        group, results = analysis.analyze_entities(entities=options["entities"])
        document = {
            "analysis_id": group,
            "entities": {
                r.entity: {"analysis_id": str(r.result.id), **r.counts.as_dict()} for r in results
            },
        }
        if options["json"]:
            self.emit_json(document)
            return EXIT_OK
        rows = [
            [
                r.entity,
                r.counts.new,
                r.counts.modified,
                r.counts.deleted,
                r.counts.unchanged,
                r.counts.retry,
            ]
            for r in results
        ]
        self.table(["entity", "new", "modified", "deleted", "unchanged", "retry"], rows)
        return EXIT_OK

    def cmd_run(self, options: dict[str, Any]) -> int:
        run_options = runs.RunOptions(
            baseline=options["baseline"],
            dry_run=options["dry_run"],
            batch_size=options["batch_size"],
            max_delete_share=options["max_delete_share"],
        )
        session = runs.launch_session(entities=options["entities"], options=run_options, user="cli")
        if not options["json"]:
            self.stdout.write(f"session {session.migration_session_id}")
        # Without a queue the run executes here, so the command waits whether or not --wait.
        session = runs.execute_session(session_id=session.migration_session_id)
        document = session_document(session)
        if options["json"]:
            self.emit_json(document)
        else:
            self.print_session(document)
        return session_exit_code(session)

    def cmd_status(self, options: dict[str, Any]) -> int:
        session = get_session(options["session"])
        document = session_document(session)
        if options["json"]:
            self.emit_json(document)
        else:
            self.print_session(document)
        return EXIT_OK

    def cmd_pause(self, options: dict[str, Any]) -> int:
        session = runs.request_pause(
            session_id=get_session(options["session"]).migration_session_id
        )
        state = "paused" if session.overall_status == SessionStatus.PAUSED else "pause requested"
        self.stdout.write(f"session {session.migration_session_id}: {state}")
        return EXIT_OK

    def cmd_cancel(self, options: dict[str, Any]) -> int:
        session = runs.request_cancel(
            session_id=get_session(options["session"]).migration_session_id
        )
        state = (
            "cancelled" if session.overall_status == SessionStatus.CANCELLED else "cancel requested"
        )
        self.stdout.write(f"session {session.migration_session_id}: {state}")
        return EXIT_OK

    def cmd_resume(self, options: dict[str, Any]) -> int:
        session_id = get_session(options["session"]).migration_session_id
        runs.prepare_resume(session_id=session_id, user="cli")
        self.stdout.write(f"session {session_id}: resumed")
        session = runs.execute_session(session_id=session_id)
        self.print_session(session_document(session))
        return session_exit_code(session)

    def cmd_logs(self, options: dict[str, Any]) -> int:
        session = get_session(options["session"])
        try:
            level = parse_level(options["level"]) if options["level"] else None
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        last = 0
        while True:
            for entry in session_logs(
                session_id=session.migration_session_id,
                level=level,
                entity=options["entity"],
                after_id=last,
            ):
                self.stdout.write(format_log_line(entry))
                last = entry.id
            if not options["follow"]:
                return EXIT_OK
            session.refresh_from_db()
            if session.is_finished:
                return EXIT_OK
            time.sleep(1.0)

    def cmd_lookup(self, options: dict[str, Any]) -> int:
        # Re-encode what the user typed so that either escaping style finds the record.
        key_text = encode_key(decode_key(options["key"]))
        history = record_history(entity=options["entity"], key_text=key_text)
        if options["json"]:
            self.emit_json(
                {"uuid": history.uuid, "events": history.events, "quarantine": history.quarantine}
            )
            return EXIT_OK if history.found else EXIT_FAILED
        if not history.found:
            self.stderr.write(f"{options['entity']} {key_text}: not found in the record map")
            return EXIT_FAILED
        deleted = f"  (deleted {history.deleted_at})" if history.deleted_at else ""
        self.stdout.write(f"{history.uuid or '-'}{deleted}")
        for event in history.events:
            reason = f"  {event['reason']}" if event["reason"] else ""
            version = f"v{event['mapping_version']}"
            self.stdout.write(
                f"{event['time']}  {event['session']}  {event['action']}  {version}{reason}"
            )
        if history.quarantine:
            self.stdout.write(f"quarantined: {history.quarantine['reason']}")
        return EXIT_OK

    def print_session(self, document: dict[str, Any]) -> None:
        s = document["session"]
        self.stdout.write(
            f"session {s['id']}: {s['status']}  processed {s['processed']}, failed {s['failed']}, "
            f"skipped {s['skipped']}, remaining {s['remaining']}, {s['rows_per_s']:,.0f} rows/s"
            + (f", ETA {s['eta']}" if s.get("eta") else "")
        )
        rows = [
            [
                name,
                e["status"],
                e["new"],
                e["modified"],
                e["deleted"],
                e["unchanged"],
                e["retry"],
                e["processed"],
                e["failed"],
                e["skipped"],
            ]
            for name, e in document["entities"].items()
        ]
        self.table(
            [
                "entity",
                "status",
                "new",
                "modified",
                "deleted",
                "unchanged",
                "retry",
                "processed",
                "failed",
                "skipped",
            ],
            rows,
        )
        for entity, message in s.get("errors", {}).items():
            self.stderr.write(f"{entity}: {message}")


def session_exit_code(session) -> int:
    status = session.overall_status
    if status == SessionStatus.COMPLETED:
        return EXIT_OK
    if status in (SessionStatus.PAUSED, SessionStatus.CANCELLED):
        return EXIT_STOPPED
    if was_refused(session):
        return EXIT_REFUSED
    return EXIT_FAILED
