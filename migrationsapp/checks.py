"""System checks: say plainly when the embedded development defaults are in force."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning, register


@register()
def debug_defaulted(app_configs, **kwargs):
    if getattr(settings, "DIFFMIG_DEBUG_DEFAULTED", False):
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
