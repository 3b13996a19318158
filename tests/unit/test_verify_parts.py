"""verify's report of an entity checked in ranges of its keys: the parts' reports, one after
another, are the report of one pass over all of them (engine.verify_report)."""

from __future__ import annotations

from itertools import pairwise

from migrationsapp.engine.verify_report import (
    Q_DIFFERENT,
    Q_EQUAL,
    CappedList,
    EntityVerification,
    FieldDifference,
    QuarantinedState,
)

# Each record: (key, what verify found). One pass over all of them, or ranges of them.
RECORDS = [
    ("1", "compared"),
    ("2", "missing"),
    ("3", "different"),
    ("4", "stale"),
    ("5", "quarantined-equal"),
    ("6", "missing"),
    ("7", "different"),
    ("8", "quarantined-different"),
    ("9", "missing"),
]


def checked(records: list[tuple[str, str]], cap: int) -> EntityVerification:
    report = EntityVerification("item", 1, cap=cap)
    for key, found in records:
        if found == "missing":
            report.missing.add(key)
            continue
        if found.startswith("quarantined"):
            state = Q_EQUAL if found.endswith("equal") else Q_DIFFERENT
            report.add_quarantined(QuarantinedState(key=key, state=state))
            continue
        report.compared += 1
        if found == "different":
            report.different_records += 1
            report.different.add(FieldDifference(key, "name", "a", "b"))
        if found == "stale":
            report.stale.add(key)
    return report


def test_ranges_of_a_pass_make_its_report():
    for cap in (1, 2, 10):
        whole = checked(RECORDS, cap)
        for cuts in ([3], [1, 5], [2, 4, 6, 8], [9]):
            edges = [0, *cuts, len(RECORDS)]
            merged = EntityVerification("item", 1, cap=cap)
            for lo, hi in pairwise(edges):
                merged.extend(checked(RECORDS[lo:hi], cap))
            assert merged.as_dict() == whole.as_dict(), (cap, cuts)
            assert merged.truncated == whole.truncated
            assert merged.equal == whole.equal is False


def test_a_capped_list_extended_keeps_the_first_items_and_counts_all():
    first, second = CappedList(3), CappedList(3)
    for item in "ab":
        first.add(item)
    for item in "cde":
        second.add(item)
    first.extend(second)
    assert (first.items, first.total, first.truncated) == (["a", "b", "c"], 5, True)
