"""The demo's summary: how the changes it made become the analysis's counts, sum by sum."""

from __future__ import annotations

from migrationsapp.demo.clinic import EntityChanges
from migrationsapp.services.demo import explain_counts


def test_each_count_is_written_as_the_sum_of_the_changes_it_comes_from():
    changes = EntityChanges(
        inserted={"10", "11"},
        updated={"1", "2", "3"},  # 3 was quarantined at the baseline and is fixed now
        deleted={"4", "5"},  # 5 never migrated
        fixed={"3"},
    )
    truth = {
        "new": {"10", "11", "3"},
        "modified": {"1", "2"},
        "deleted": {"4"},
        "unchanged": {"6"},
        "retry": {"7"},
    }
    assert explain_counts(changes, truth) == (
        "new 3 = 2 inserted + 1 changed while quarantined, "
        "modified 2 (of 3 updated: the others were quarantined), "
        "deleted 1 (1 more was never migrated), "
        "retry 1 (quarantined, unchanged)"
    )


def test_counts_that_equal_the_changes_need_no_explanation():
    changes = EntityChanges(inserted={"9"}, updated={"1"}, deleted={"2"})
    truth = {"new": {"9"}, "modified": {"1"}, "deleted": {"2"}, "unchanged": set(), "retry": set()}
    assert explain_counts(changes, truth) == (
        "new 1 = 1 inserted, modified 1, deleted 1, retry 0 (quarantined, unchanged)"
    )
