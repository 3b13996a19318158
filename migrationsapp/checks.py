"""System checks: say plainly when the embedded development defaults are in force."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning, register


@register()
def debug_defaulted(app_configs, **kwargs):
    if getattr(settings, "DIFFMIG_DEBUG_DEFAULTED", False):
        return [
            Warning(
                "DEBUG is on because DEBUG is not set.",
                hint="Production sets DEBUG=0 with SECRET_KEY and DIFFMIG_FERNET_KEYS.",
                id="diffmig.W001",
            )
        ]
    return []
