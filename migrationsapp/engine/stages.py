"""Where a batch's time goes: seconds per stage, and their totals over batches.

Five stages: ``read`` (the change set, the source rows, the record map's own entries),
``transform``, ``validate`` (rules, references, adoption, uniqueness in the batch and in the
destination), ``write`` (the destination) and ``control`` (the batch's control commit).
The runner measures the first four around its own steps; the checkpoint store measures the
fifth around its commit and adds the five to the unit's totals in that same transaction
(``engine.ports.CheckpointStore``), so a batch's seconds are counted exactly when its
checkpoint moves: once, a replayed batch included. A batch's wall time (``seconds`` of the
totals) runs from its read to the end of its control commit; the stages are disjoint
intervals inside it, so their sum never exceeds it. What is left over is the runner's own
bookkeeping and the commit's last statement.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

STAGES = ("read", "transform", "validate", "write", "control")


def clock() -> float:
    """The one clock of stage times (monotonic, high resolution)."""
    return time.perf_counter()


@dataclass
class StageSeconds:
    """Seconds spent in each stage (of one batch, or summed over batches)."""

    read: float = 0.0
    transform: float = 0.0
    validate: float = 0.0
    write: float = 0.0
    control: float = 0.0

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        """Add the time the block takes to ``stage`` (also when it raises)."""
        started = clock()
        try:
            yield
        finally:
            setattr(self, stage, getattr(self, stage) + clock() - started)

    def total(self) -> float:
        return sum(getattr(self, name) for name in STAGES)

    def add(self, other: StageSeconds) -> None:
        for name in STAGES:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Any) -> StageSeconds:
        """Back from ``as_dict``; anything missing or not a number counts as 0."""
        data = data if isinstance(data, Mapping) else {}
        return cls(**{name: _seconds(data.get(name)) for name in STAGES})


def close_control(stages: StageSeconds, *, batch_started: float, commit_began: float) -> float:
    """Set ``stages.control`` to the time since ``commit_began``; return the batch's wall
    seconds (since ``batch_started``, the start of its read), measured at the same instant."""
    now = clock()
    stages.control = now - commit_began
    return now - batch_started


@dataclass
class StageTotals:
    """The stage seconds of a number of batches, and those batches' wall seconds."""

    batches: int = 0
    seconds: float = 0.0
    stages: StageSeconds = field(default_factory=StageSeconds)

    def add_batch(self, stages: StageSeconds, seconds: float) -> None:
        self.batches += 1
        self.seconds += seconds
        self.stages.add(stages)

    def add(self, other: StageTotals) -> None:
        self.batches += other.batches
        self.seconds += other.seconds
        self.stages.add(other.stages)

    def to_json(self) -> dict[str, Any]:
        return {"batches": self.batches, "seconds": self.seconds, "stages": self.stages.as_dict()}

    @classmethod
    def from_json(cls, data: Any) -> StageTotals:
        """Back from ``to_json``; None (a unit that recorded none yet) is zero batches."""
        data = data if isinstance(data, Mapping) else {}
        batches = data.get("batches")
        return cls(
            batches=batches if isinstance(batches, int) and batches > 0 else 0,
            seconds=_seconds(data.get("seconds")),
            stages=StageSeconds.from_dict(data.get("stages")),
        )


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return max(float(value), 0.0)
