"""A process of ``verify`` (services.verify_processes): it verifies the entities it is given,
one at a time, on its own connections, and returns each one's ``EntityVerification``.

Nothing of Django is imported here until ``start`` has set the process up: a spawned
process imports this module before anything else.
"""

from __future__ import annotations

import logging
from typing import Any

from migrationsapp.helper_startup import setup_django

logger = logging.getLogger("diffmig.verify_worker")


def start(database_url: str) -> None:
    """Set the process up on the caller's control database."""
    setup_django(database_url)


def verify(name: str, batch_size: int, cap: int) -> Any:
    """The entity's EntityVerification, or None when anything stopped it (the caller then
    verifies it itself, and reports what stopped it)."""
    from migrationsapp.services.mappings import load_active_mapping
    from migrationsapp.services.verify import verify_here

    found: dict[str, Any] = {}
    try:
        verify_here(load_active_mapping(), [name], found, batch_size=batch_size, cap=cap)
    except Exception as error:  # the caller verifies it again, and reports what is wrong
        logger.warning("verify of %s stopped: %s", name, error)
        return None
    return found[name]
