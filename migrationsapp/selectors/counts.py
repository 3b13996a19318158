"""An entity's counts: what its analysis found and what its run did (docs/cli.md, counts).

``changes`` (new + modified + deleted + retry) and ``remaining`` (changes not yet processed,
failed or skipped) are derived here and nowhere else, for the pages, the CLI's documents
and the services alike; so is a count as a share of another (``percent_of``, bar widths).
"""

from __future__ import annotations

from dataclasses import dataclass

from migrationsapp.models import MigrationControl


def percent_of(part: int, whole: int) -> float:
    """``part`` as a percentage of ``whole``, for bar widths (0 to 100, one decimal)."""
    if whole <= 0:
        return 0.0
    return round(min(max(part / whole, 0.0), 1.0) * 100, 1)


@dataclass(frozen=True, kw_only=True)
class EntityCounts:
    new: int = 0
    modified: int = 0
    deleted: int = 0
    unchanged: int = 0
    retry: int = 0
    processed: int = 0
    failed: int = 0
    skipped: int = 0

    @classmethod
    def of(cls, control: MigrationControl) -> EntityCounts:
        return cls(
            new=control.new_count,
            modified=control.modified_count,
            deleted=control.deleted_count,
            unchanged=control.unchanged_count,
            retry=control.retry_count,
            processed=control.processed_count,
            failed=control.failed_count,
            skipped=control.skipped_count,
        )

    @property
    def changes(self) -> int:
        return self.new + self.modified + self.deleted + self.retry

    @property
    def done(self) -> int:
        return self.processed + self.failed + self.skipped

    @property
    def remaining(self) -> int:
        return max(self.changes - self.done, 0)
