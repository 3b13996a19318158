"""The one batch loop of every unit: the upserts and deletes (``engine.runner``) and the
second pass of ``reference: self`` (``engine.selfref``).

Before each batch the loop asks whether to stop (an operator's pause or cancel, or the
unit's most batches for one step: a *slice*); then it reads the batch after its position
(timed as the ``read`` stage), has it run (destination first), commits it to the control
database, tells the progress sink, and moves its position to the batch's last change id.
The fault hook is called at the two points between the commits, where the tests inject
crashes (``after_destination_commit``, ``after_control_commit``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .outcomes import StopRequest, UnitStatus
from .ports import FaultHook
from .stages import StageSeconds, clock


class BatchCounts(Protocol):
    """A batch's outcomes counted (``BatchResult`` counts them; the control commit once)."""

    @property
    def processed(self) -> int: ...

    @property
    def failed(self) -> int: ...

    @property
    def skipped(self) -> int: ...


class CommittedBatch(BatchCounts, Protocol):
    """What the loop reads of a batch's result once it is committed."""

    @property
    def last_change_id(self) -> int: ...


@dataclass
class UnitOutcome:
    """How a unit of work ended, and what its batches did."""

    status: UnitStatus
    last_change_id: int
    batches: int = 0
    processed: int = 0
    failed: int = 0
    skipped: int = 0

    def __post_init__(self) -> None:
        # A caller may pass the plain value ("done"): the status is the enum all the same.
        self.status = UnitStatus(self.status)

    def add(self, result: CommittedBatch) -> None:
        """Count one committed batch, and move the position past it."""
        self.last_change_id = result.last_change_id
        self.batches += 1
        self.processed += result.processed
        self.failed += result.failed
        self.skipped += result.skipped


def stop_status(
    signal: StopRequest, outcome: UnitOutcome, *, max_batches: int | None
) -> UnitStatus | None:
    """The status a batch loop stops with before its next batch: the operator's request
    (``paused``/``cancelled``), ``slice`` once ``max_batches`` are done, else None."""
    if signal.stopped_as is not None:
        return signal.stopped_as
    if max_batches is not None and outcome.batches >= max_batches:
        return UnitStatus.SLICE
    return None


Item = TypeVar("Item")
Result = TypeVar("Result", bound=CommittedBatch)


def run_batches(
    *,
    after_id: int,
    read: Callable[[int], Sequence[Item]],
    run_batch: Callable[[Sequence[Item], StageSeconds, float], Result],
    commit: Callable[[Result], None],
    stop_requested: Callable[[], StopRequest],
    max_batches: int | None = None,
    fault: FaultHook | None = None,
    committed: Callable[[Result], None] | None = None,
) -> UnitOutcome:
    """Run batches from change ``after_id`` on until none is left (``done``) or the loop is
    asked to stop. ``read(position)`` returns the next batch; ``run_batch(batch, stages,
    started)`` writes it to the destination and returns its result; ``commit(result)`` is
    the control commit; ``committed(result)``, when given, hears of each committed batch."""
    outcome = UnitOutcome(status=UnitStatus.DONE, last_change_id=after_id)
    while True:
        stopped = stop_status(stop_requested(), outcome, max_batches=max_batches)
        if stopped:
            outcome.status = stopped
            return outcome
        started = clock()
        stages = StageSeconds()
        with stages.measure("read"):
            batch = read(outcome.last_change_id)
        if not batch:
            return outcome
        result = run_batch(batch, stages, started)
        if fault:
            fault("after_destination_commit")
        commit(result)
        if fault:
            fault("after_control_commit")
        if committed is not None:
            committed(result)
        outcome.add(result)
