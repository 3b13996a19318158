"""A helper process of the in-process executor (services.runs.local_processes): ``python -m
migrationsapp.partition_helper SESSION CONTROL OWNER``.

It takes the entity's partitions that nobody holds, one at a time, under their leases with
its ``OWNER`` token, and runs each to its end, as the executor that started it does
(``local_processes``); it stops when none is left free, or when the session is asked to
pause or cancel. Its exit code: 0, or 1 when something stopped it (the executor then looks
at what is left).
"""

from __future__ import annotations

import uuid

from migrationsapp.helper_startup import run_helper


def main(argv: list[str]) -> int:
    session_id, control_id, owner = uuid.UUID(argv[0]), uuid.UUID(argv[1]), argv[2]
    from migrationsapp.models import MigrationControl
    from migrationsapp.services.runs.context import session_context
    from migrationsapp.services.runs.entity_steps import take_free_partitions
    from migrationsapp.services.runs.results import UnitResult

    control = MigrationControl.objects.get(pk=control_id)
    with session_context(session_id=session_id, owner=owner) as ctx:
        how = take_free_partitions(ctx, control)
    return 0 if how == UnitResult.DONE else 1


if __name__ == "__main__":
    run_helper(main)
