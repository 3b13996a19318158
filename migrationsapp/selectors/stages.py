"""Where a session's time went: seconds per stage, per entity and for the session.

Each batch adds its read, transform, validate, write and control seconds to its unit's
checkpoint in its own control transaction (``services.run_ports``; engine.stages says what
each stage covers). An entity's totals are the sum over its units (upsert, its partitions,
link, delete); the session's, the sum over its entities. A session that has ended also keeps
a copy in ``performance_metrics`` (``services.runs``), read once retention has removed its
checkpoints. A session from before stage times were recorded has none: ``recorded`` is False.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from migrationsapp.engine.stages import STAGES, StageTotals
from migrationsapp.models import MigrationCheckpoint, MigrationStatus

# The key of a unit's stage totals in its checkpoint_data (engine.stages.StageTotals), which
# services.run_ports writes and this module reads.
TIMING = "timing"
# The key of the copy a session keeps in its performance_metrics.
METRICS_KEY = "stages"


@dataclass(frozen=True)
class StageShare:
    """One stage of a row on the session page: its seconds and share of the batches' time."""

    stage: str
    seconds: float
    pct: float
    x: float  # where its segment starts in a stacked bar (percent)


@dataclass(frozen=True)
class StageTimes:
    """The stage seconds of an entity, or of a whole session."""

    name: str
    totals: StageTotals

    @property
    def recorded(self) -> bool:
        return self.totals.batches > 0

    @property
    def batch_seconds(self) -> float:
        return round(self.totals.seconds, 6)

    def document(self) -> dict[str, float]:
        """The `--json` ``stages`` object: seconds per stage."""
        return {name: round(getattr(self.totals.stages, name), 6) for name in STAGES}

    @property
    def shares(self) -> list[StageShare]:
        whole = self.totals.seconds
        shares, x = [], 0.0
        for name in STAGES:
            seconds = getattr(self.totals.stages, name)
            pct = round(min(seconds / whole, 1.0) * 100, 1) if whole > 0 else 0.0
            shares.append(StageShare(stage=name, seconds=round(seconds, 3), pct=pct, x=x))
            x = round(x + pct, 1)
        return shares

    @property
    def slowest(self) -> str:
        """The stage that took longest ("" when none was recorded)."""
        if not self.recorded:
            return ""
        return max(STAGES, key=lambda name: getattr(self.totals.stages, name))


@dataclass(frozen=True)
class SessionStages:
    entities: dict[str, StageTimes]
    session: StageTimes

    def of(self, entity: str) -> StageTimes:
        return self.entities.get(entity) or StageTimes(entity, StageTotals())


def stage_totals_by_entity(session_id: Any) -> dict[str, StageTotals] | None:
    """Entity → its units' totals summed, from the checkpoints (None: the session has none)."""
    rows = list(
        MigrationCheckpoint.objects.filter(migration_run__session_id=session_id).values_list(
            "migration_run__entity_type", "checkpoint_data"
        )
    )
    if not rows:
        return None
    found: dict[str, StageTotals] = {}
    for entity, data in rows:
        totals = found.setdefault(entity, StageTotals())
        if isinstance(data, Mapping):
            totals.add(StageTotals.from_json(data.get(TIMING)))
    return found


def metrics_copy(by_entity: Mapping[str, StageTotals]) -> dict[str, Any]:
    """What ``services.runs`` keeps in performance_metrics when a session ends."""
    return {entity: totals.to_json() for entity, totals in by_entity.items()}


def session_stages(session: MigrationStatus) -> SessionStages:
    by_entity = stage_totals_by_entity(session.migration_session_id)
    if by_entity is None:
        kept = (session.performance_metrics or {}).get(METRICS_KEY)
        kept = kept if isinstance(kept, Mapping) else {}
        by_entity = {str(e): StageTotals.from_json(t) for e, t in kept.items()}
    total = StageTotals()
    for totals in by_entity.values():
        total.add(totals)
    return SessionStages(
        entities={e: StageTimes(e, t) for e, t in by_entity.items()},
        session=StageTimes("session", total),
    )
