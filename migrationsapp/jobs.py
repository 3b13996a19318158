"""RQ job functions: ids in, one service call. Enqueued by dotted path (services.dispatch),
so that a worker imports them and nothing but ids and numbers is pickled into Redis."""

from __future__ import annotations

import uuid

from migrationsapp.services import retention, verify_runs
from migrationsapp.services.runs import UnitResult
from migrationsapp.services.units import execute_unit


def run_unit(*, session_id: str, control_id: str, phase: str, position: int) -> UnitResult:
    """One slice of one entity's unit of a session, and how it ended; see
    services.units.execute_unit."""
    return execute_unit(
        session_id=uuid.UUID(session_id),
        control_id=uuid.UUID(control_id),
        phase=phase,
        position=position,
    )


def apply_retention() -> dict[str, int]:
    """The retention policy (services.retention), scheduled daily by the workers; the rows
    deleted per table."""
    return retention.apply_retention().deleted


def run_verify_runs() -> list[str]:
    """Every pending verification launched from the web (services.verify_runs); their ids."""
    return verify_runs.run_verify_runs()
