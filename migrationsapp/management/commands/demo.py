"""`make demo` (`python manage.py demo`): the main job end to end on the embedded default, then
how to go on: the web pages (the demo user and its password) and the CLI's next commands."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import DatabaseError

from migrationsapp.cli.output import EXIT_OPERATIONAL
from migrationsapp.cli.setup_hints import command_prefix, control_database_problem
from migrationsapp.demo.clinic import ENTITIES
from migrationsapp.selectors.sessions import status_label
from migrationsapp.services.demo import run_demo

KINDS = ("new", "modified", "deleted", "unchanged", "retry")
DONE = ("processed", "failed", "skipped")


class Command(BaseCommand):
    help = (
        "Build a messy legacy clinic and an empty destination, migrate it with a baseline, "
        "change the legacy data, migrate again, verify, and print what was found and done. "
        "Example: make demo"
    )

    def handle(self, *args, **options) -> None:
        try:
            result = run_demo(say=self.stdout.write)
        except DatabaseError as error:
            problem = control_database_problem(error)
            if problem is None or options.get("traceback"):
                raise
            self.stderr.write(f"error: {problem[0]}\nhint: {problem[1]}")
            raise SystemExit(EXIT_OPERATIONAL) from None
        self.stdout.write("")
        self.summary("baseline", result.baseline)
        self.stdout.write("")
        self.stdout.write("what the demo changed in the legacy database:")
        for entity in ENTITIES:
            c = result.changes[entity]
            self.stdout.write(
                f"  {entity:<12} {len(c.inserted)} inserted, {len(c.updated)} updated "
                f"({len(c.silent)} silently, {len(c.moved)} moved), {len(c.deleted)} deleted, "
                f"{len(c.unmapped_only)} unmapped-only changes, {len(c.fixed)} fixed"
            )
            self.stdout.write(f"  {'':<12} → expected: {result.explained[entity]}")
        self.stdout.write("")
        self.summary("differential", result.differential)
        self.stdout.write("")
        self.stdout.write("verify (source and destination, record by record):")
        kinds = ("compared", "missing", "extra", "different", "quarantined")
        self.stdout.write(f"  {'entity':<12}" + "".join(f"{k:>12}" for k in kinds))
        for entity, counts in result.verification.items():
            self.stdout.write(f"  {entity:<12}" + "".join(f"{counts[k]:>12}" for k in kinds))
        self.stdout.write("")
        if result.matches:
            self.stdout.write(
                self.style.SUCCESS(
                    "the differential run found exactly what changed, "
                    "and the destination verifies equal to the source"
                )
            )
        else:
            self.stdout.write(self.style.ERROR("the differential run does not match the changes:"))
            for line in result.mismatches:
                self.stdout.write(f"  {line}")
        session = result.differential["session"]["id"]
        login = result.login
        why = (
            "the demo's documented password: the control database is the embedded one"
            if login.fixed
            else "a new password from this demo, printed once: set your own in the admin"
        )
        diffmig = command_prefix()
        self.stdout.write(
            "\nthe web pages: make serve, then "
            f"open http://127.0.0.1:8000/ and sign in as {login.username} / {login.password}\n"
            f"      ({why})\n"
            f"next: {diffmig} logs {session[:8]} --level warn   (why records failed)\n"
            f"      {diffmig} lookup patient 'P-0001'   (a record's history)"
        )
        if not result.matches:
            raise SystemExit(1)

    def summary(self, title: str, document: dict) -> None:
        s = document["session"]
        self.stdout.write(
            f"{title} run {s['id'][:8]}: {status_label(s)}, {s['processed']} processed, "
            f"{s['failed']} failed (quarantined), {s['rows_per_s']:,.0f} rows/s overall"
        )
        header = f"  {'entity':<12}" + "".join(f"{k:>10}" for k in (*KINDS, *DONE))
        self.stdout.write(header)
        for entity, counts in document["entities"].items():
            self.stdout.write(
                f"  {entity:<12}" + "".join(f"{counts[k]:>10}" for k in (*KINDS, *DONE))
            )
