"""Reading a change set back in batches (services.changeset.read_change_rows).

PostgreSQL reads one ordered index range per kind and merges them; the embedded SQLite
control database keeps the ORM query. Both must give the same batches: the changes of the
asked kinds, after the last id, inside the partition's range, by id, at most ``limit``.
"""

from __future__ import annotations

import pytest

from migrationsapp.models.choices import ChangeKind
from migrationsapp.services.batches import UPSERT_KINDS
from migrationsapp.services.changeset import read_change_rows
from tests.factories import AnalysisChangeFactory, DifferentialAnalysisResultFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

# Interleaved, as the analysis writes them (one INSERT … SELECT ordered by key).
KINDS = [
    ChangeKind.NEW,
    ChangeKind.MODIFIED,
    ChangeKind.NEW,
    ChangeKind.RETRY,
    ChangeKind.DELETED,
    ChangeKind.MODIFIED,
    ChangeKind.NEW,
    ChangeKind.DELETED,
    ChangeKind.RETRY,
    ChangeKind.NEW,
]


@pytest.fixture
def change_set():
    """An analysis with interleaved kinds, next to another analysis of the same entity."""
    analysis = DifferentialAnalysisResultFactory(entity_type="patient")
    other = DifferentialAnalysisResultFactory(entity_type="patient")
    changes = []
    for n, kind in enumerate(KINDS):
        changes.append(
            AnalysisChangeFactory(
                analysis=analysis, kind=kind, legacy_key=[n, f"k/{n}"], legacy_key_text=f"{n}"
            )
        )
        AnalysisChangeFactory(analysis=other, kind=kind)
    return analysis, changes


def as_rows(changes):
    return [(c.id, c.kind, c.legacy_key, c.legacy_key_text, c.content_hash) for c in changes]


def test_upserts_come_by_id_across_kinds_in_batches_of_limit(change_set) -> None:
    analysis, changes = change_set
    upserts = [c for c in changes if c.kind in UPSERT_KINDS]

    first = read_change_rows(analysis_id=analysis.id, kinds=UPSERT_KINDS, after_id=0, limit=3)
    rest = read_change_rows(
        analysis_id=analysis.id, kinds=UPSERT_KINDS, after_id=first[-1][0], limit=100
    )

    assert first == as_rows(upserts[:3])
    assert rest == as_rows(upserts[3:])
    assert first[0][2] == [0, "k/0"]  # the typed key, as stored


def test_deletes_alone_and_nothing_after_the_last(change_set) -> None:
    analysis, changes = change_set
    deletes = [c for c in changes if c.kind == ChangeKind.DELETED]

    rows = read_change_rows(
        analysis_id=analysis.id, kinds=(ChangeKind.DELETED,), after_id=0, limit=100
    )
    after_last = read_change_rows(
        analysis_id=analysis.id, kinds=UPSERT_KINDS, after_id=changes[-1].id, limit=100
    )

    assert rows == as_rows(deletes)
    assert after_last == []


def test_a_partition_reads_only_its_range(change_set) -> None:
    analysis, changes = change_set
    lo, hi = changes[2].id, changes[8].id
    inside = [c for c in changes[2:9] if c.kind in UPSERT_KINDS]

    first = read_change_rows(
        analysis_id=analysis.id, kinds=UPSERT_KINDS, after_id=0, limit=2, lo=lo, hi=hi
    )
    rest = read_change_rows(
        analysis_id=analysis.id, kinds=UPSERT_KINDS, after_id=first[-1][0], limit=9, lo=lo, hi=hi
    )

    assert first == as_rows(inside[:2])
    assert rest == as_rows(inside[2:])
