"""The embedded default's background executor: work in a thread of this process, started
once the caller's transaction commits.

Without ``REDIS_URL`` a session launched from the web (``services.runs.start_run``) and a
verification (``services.verify_runs``) run this way; with it, on the workers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import close_old_connections, connection, transaction

logger = logging.getLogger("diffmig.executor")


def start_in_thread_after_commit(work: Callable[[], object], *, name: str, what: str) -> None:
    """Run ``work`` in a daemon thread of this process once the current transaction commits.

    The thread opens its own database connection and closes it at the end. ``work`` records
    its own failure (a session, a verification); an exception that still escapes is logged
    with ``what``, never raised.
    """

    def body() -> None:
        close_old_connections()
        try:
            work()
        except Exception:  # the work records its own failure; this is the thread's last word
            logger.exception("%s stopped with an unexpected error", what)
        finally:
            connection.close()

    transaction.on_commit(lambda: threading.Thread(target=body, name=name, daemon=True).start())
