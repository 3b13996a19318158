"""The read-ahead helper of the in-process executor (services.runs.read_ahead): ``python -m
migrationsapp.read_ahead_helper SESSION``.

It reads the source of each hash entity of the session that the executor has not started,
the last entity first, and ends. Its exit code is 0; the executor reads again whatever it
could not.
"""

from __future__ import annotations

import uuid

from migrationsapp.helper_startup import run_helper


def main(argv: list[str]) -> int:
    session_id = uuid.UUID(argv[0])
    from migrationsapp.services.runs.context import session_context
    from migrationsapp.services.runs.read_ahead import read_ahead

    with session_context(session_id=session_id) as ctx:
        read_ahead(ctx)
    return 0


if __name__ == "__main__":
    run_helper(main)
