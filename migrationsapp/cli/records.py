"""`diffmig logs` and `diffmig lookup`: what happened, to the session and to one record."""

from __future__ import annotations

import time
from typing import Any

from migrationsapp.cli.output import EXIT_FAILED, EXIT_OK, Output, Subcommand
from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.engine.ids import decode_key, encode_key
from migrationsapp.selectors.logs import (
    format_log_line,
    log_entry_document,
    parse_level,
    session_logs,
)
from migrationsapp.selectors.records import record_history
from migrationsapp.selectors.sessions import get_session

FOLLOW_INTERVAL_S = 1.0


def add_logs_arguments(parser) -> None:
    parser.add_argument("session")
    parser.add_argument("--level", help="threshold: debug, info, warn, error (any case)")
    parser.add_argument("--entity")
    parser.add_argument("--follow", action="store_true", help="keep printing new entries")
    parser.add_argument("--json", action="store_true", help="print a JSON document")


def logs(options: dict[str, Any], out: Output) -> int:
    session = get_session(options["session"])
    try:
        level = parse_level(options["level"]) if options["level"] else None
    except ValueError as error:
        raise ConfigurationError(str(error)) from error
    if options["json"]:
        if options["follow"]:
            raise ConfigurationError("--json prints one document: use it without --follow")
        entries = session_logs(
            session_id=session.migration_session_id, level=level, entity=options["entity"]
        )
        out.json(
            {
                "session": str(session.migration_session_id),
                "entries": [log_entry_document(entry) for entry in entries.iterator()],
            }
        )
        return EXIT_OK
    last = 0
    while True:
        for entry in session_logs(
            session_id=session.migration_session_id,
            level=level,
            entity=options["entity"],
            after_id=last,
        ):
            out.line(format_log_line(entry))
            last = entry.id
        if not options["follow"]:
            return EXIT_OK
        session.refresh_from_db()
        if session.is_finished:
            return EXIT_OK
        time.sleep(FOLLOW_INTERVAL_S)


def add_lookup_arguments(parser) -> None:
    parser.add_argument("entity")
    parser.add_argument("key", help="the legacy key as text: 42, 1007/3, NEW\\/ 1,2")
    parser.add_argument("--json", action="store_true")


def lookup(options: dict[str, Any], out: Output) -> int:
    # Re-encode what was typed so that a needlessly escaped key finds the record too.
    key_text = encode_key(decode_key(options["key"]))
    history = record_history(entity=options["entity"], key_text=key_text)
    if options["json"]:
        out.json({"uuid": history.uuid, "events": history.events, "quarantine": history.quarantine})
        return EXIT_OK if history.found else EXIT_FAILED
    if not history.found:
        out.note(f"{options['entity']} {key_text}: not found in the record map")
        return EXIT_FAILED
    deleted = f"  (deleted {history.deleted_at})" if history.deleted_at else ""
    out.line(f"{history.uuid or '-'}{deleted}")
    for event in history.events:
        reason = f"  {event['reason']}" if event["reason"] else ""
        version = f"v{event['mapping_version']}"
        out.line(f"{event['time']}  {event['session']}  {event['action']}  {version}{reason}")
    if history.quarantine:
        out.line(f"quarantined: {history.quarantine['reason']}")
    return EXIT_OK


COMMANDS = [
    Subcommand(
        "logs",
        "the execution log of a session, one line per entry",
        "diffmig logs 3f2a9c1e --level warn --entity doctor",
        add_logs_arguments,
        logs,
    ),
    Subcommand(
        "lookup",
        "a record's destination UUID and its history",
        "diffmig lookup appointment 'P-001/2'",
        add_lookup_arguments,
        lookup,
    ),
]
