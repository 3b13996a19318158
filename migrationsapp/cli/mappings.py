"""`diffmig mappings import|export`."""

from __future__ import annotations

from typing import Any

from migrationsapp.cli import preview as preview_module
from migrationsapp.cli.output import EXIT_OK, Output, Subcommand
from migrationsapp.services import mappings
from migrationsapp.services.logs import CLI_ACTOR
from migrationsapp.services.mapping_files import read_mapping_file


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    importer = actions.add_parser(
        "import",
        help="check and store a mapping file",
        epilog="example: diffmig mappings import examples/clinic.yaml",
    )
    importer.add_argument("file")
    importer.add_argument("--dry-run", action="store_true", help="only check, store nothing")
    exporter = actions.add_parser(
        "export",
        help="print the active mappings as YAML",
        epilog="example: diffmig mappings export doctor > doctor.yaml",
    )
    exporter.add_argument("entities", nargs="*", metavar="ENTITY")
    for name, module in EXTRA_ACTIONS.items():
        module.add_arguments(actions, name)


def run(options: dict[str, Any], out: Output) -> int:
    action = options["action"]
    if action in EXTRA_ACTIONS:
        return EXTRA_ACTIONS[action].run(options, out)
    if action == "export":
        out.stdout.write(mappings.export_mapping_text(entities=options["entities"] or None))
        return EXIT_OK
    text = read_mapping_file(options["file"])
    result = mappings.import_mapping_text(text=text, dry_run=options["dry_run"], user=CLI_ACTOR)
    verb = "would store" if result.dry_run else "stored"
    for entity, version in result.created:
        out.line(f"{entity}: {verb} as version {version} (active)")
    for entity, version in result.unchanged:
        out.line(f"{entity}: unchanged (version {version})")
    if result.dry_run:
        out.line("mapping is valid; nothing stored (--dry-run)")
    return EXIT_OK


# Further `mappings` actions (e.g. preview) register here: name -> module with
# add_arguments(actions, name) and run(options, out).
EXTRA_ACTIONS: dict[str, Any] = {}
EXTRA_ACTIONS["preview"] = preview_module

COMMANDS = [
    Subcommand(
        name="mappings",
        help="import, export or preview mapping definitions",
        example="diffmig mappings import examples/clinic.yaml --dry-run",
        add_arguments=add_arguments,
        run=run,
    )
]
