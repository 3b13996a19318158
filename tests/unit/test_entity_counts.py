"""An entity's changes and what remains of them are derived in one place."""

from __future__ import annotations

from migrationsapp.selectors.counts import EntityCounts


def test_changes_are_new_modified_deleted_and_retry_and_remaining_what_is_not_done():
    counts = EntityCounts(
        new=3, modified=5, deleted=2, unchanged=90, retry=1, processed=6, failed=2, skipped=1
    )
    assert (counts.changes, counts.done, counts.remaining) == (11, 9, 2)


def test_remaining_never_goes_below_zero():
    assert EntityCounts(new=1, processed=1, failed=1).remaining == 0
