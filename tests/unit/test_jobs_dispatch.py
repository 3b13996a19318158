"""Which units dispatch finds ready, from the entity runs alone (no queue, no database rows).

Upserts go in dependency order (an entity once its parents' upserts are done, independent
entities side by side); deletes only after every upsert of the session, children before
parents; a held lease keeps its unit from being dispatched again; a failed parent blocks.
"""

from __future__ import annotations

import pytest

from migrationsapp.models import MigrationControl
from migrationsapp.models.choices import EntityState
from migrationsapp.services.dispatch import plan_session

# Unsaved entity runs only: no database, no queue (embedded: it runs on SQLite too).
pytestmark = [pytest.mark.embedded]

PENDING, RUNNING = EntityState.PENDING, EntityState.RUNNING
COMPLETED, FAILED = EntityState.COMPLETED, EntityState.FAILED

# The clinic's graph: appointment depends on patient and doctor.
GRAPH = {
    "office": [],
    "doctor": ["office"],
    "patient": ["doctor"],
    "appointment": ["patient", "doctor"],
}


def runs(**states: tuple[str, str] | tuple[str, str, str]) -> list[MigrationControl]:
    """entity=(state, phase[, lease owner]) for every entity of GRAPH, in dependency order."""
    controls = []
    for position, (entity, depends_on) in enumerate(GRAPH.items()):
        state, phase, *owner = states[entity]
        controls.append(
            MigrationControl(
                entity_type=entity,
                position=position,
                depends_on=depends_on,
                state=state,
                phase=phase,
                lease_owner=owner[0] if owner else "",
            )
        )
    return controls


def ready(controls: list[MigrationControl]) -> list[tuple[str, str]]:
    return [(c.entity_type, c.phase) for c in plan_session(controls).ready]


def test_upserts_go_in_dependency_order():
    fresh = (PENDING, "analyze")
    assert ready(runs(office=fresh, doctor=fresh, patient=fresh, appointment=fresh)) == [
        ("office", "analyze")
    ]
    upserted = (RUNNING, "delete")
    assert ready(
        runs(office=upserted, doctor=upserted, patient=(RUNNING, "upsert"), appointment=fresh)
    ) == [("patient", "upsert")]
    assert ready(runs(office=upserted, doctor=upserted, patient=upserted, appointment=fresh)) == [
        ("appointment", "analyze")
    ]


def test_deletes_wait_for_every_upsert_then_go_children_first():
    upserted = (RUNNING, "delete")
    assert ready(
        runs(office=upserted, doctor=upserted, patient=upserted, appointment=(RUNNING, "link"))
    ) == [("appointment", "link")]
    assert ready(
        runs(office=upserted, doctor=upserted, patient=upserted, appointment=upserted)
    ) == [("appointment", "delete")]
    done = (COMPLETED, "done")
    assert ready(runs(office=upserted, doctor=upserted, patient=upserted, appointment=done)) == [
        ("patient", "delete")
    ]
    assert ready(runs(office=upserted, doctor=upserted, patient=done, appointment=done)) == [
        ("doctor", "delete")
    ]


def test_a_held_lease_is_not_dispatched_again():
    upserted = (RUNNING, "delete")
    controls = runs(
        office=upserted,
        doctor=upserted,
        patient=(RUNNING, "upsert", "a-worker"),
        appointment=(PENDING, "analyze"),
    )
    plan = plan_session(controls)
    assert (plan.ready, plan.leased, plan.finished) == ([], True, False)


def test_a_failed_parent_blocks_its_dependants_and_frees_the_deletes():
    plan = plan_session(
        runs(
            office=(RUNNING, "delete"),
            doctor=(FAILED, "upsert"),
            patient=(PENDING, "analyze"),
            appointment=(PENDING, "analyze"),
        )
    )
    assert [c.entity_type for c in plan.blocked] == ["patient", "appointment"]
    assert plan.ready == []
    # Once they are blocked, every upsert is settled: the office's deletes may go.
    plan = plan_session(
        runs(
            office=(RUNNING, "delete"),
            doctor=(FAILED, "upsert"),
            patient=(EntityState.BLOCKED, "analyze"),
            appointment=(EntityState.BLOCKED, "analyze"),
        )
    )
    assert [(c.entity_type, c.phase) for c in plan.ready] == [("office", "delete")]


def test_independent_entities_run_side_by_side():
    controls = [
        MigrationControl(entity_type=name, position=i, depends_on=[], phase="analyze")
        for i, name in enumerate(("clinic_note", "supplier"))
    ]
    assert [c.entity_type for c in plan_session(controls).ready] == ["clinic_note", "supplier"]
    finished = [
        MigrationControl(entity_type=name, state=state, phase="done")
        for name, state in (("a", COMPLETED), ("b", FAILED))
    ]
    assert plan_session(finished).finished
