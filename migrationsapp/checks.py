"""System checks: say plainly when the embedded development defaults are in force.

The warning is for whoever starts the server: it shows when the server's process starts and
under an explicit ``check`` (``diffmig.startup`` says which process this is), not above the
output of every other command.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning, register

_report_development_mode = False


def report_development_mode(report: bool) -> None:
    """Whether this process's system checks warn that development mode is on."""
    global _report_development_mode  # one process, one command: set once, at its start
    _report_development_mode = report


@register()
def debug_defaulted(app_configs, **kwargs):
    if _report_development_mode and getattr(settings, "DIFFMIG_DEBUG_DEFAULTED", False):
        return [
            Warning(
                "DEBUG is not set: development mode, with the development SECRET_KEY and "
                "DIFFMIG_FERNET_KEYS unless given (the debug page stays off).",
                hint="Production sets DEBUG=0 with SECRET_KEY and DIFFMIG_FERNET_KEYS; "
                "DEBUG=1 shows Django's debug page on a developer's machine.",
                id="diffmig.W001",
            )
        ]
    return []
