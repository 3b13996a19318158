"""The session state machine: every allowed and every forbidden transition, and races."""

from __future__ import annotations

import threading

import pytest
from django.db import close_old_connections, connection

from migrationsapp.engine.errors import StateTransitionError
from migrationsapp.models import MigrationControl, MigrationStatus
from migrationsapp.models.choices import EntityState, SessionStatus
from migrationsapp.services.state import (
    SESSION_TRANSITIONS,
    refresh_entity_lists,
    transition_entity,
    transition_session,
)

ALLOWED = {
    ("pending", "running"),
    ("pending", "cancelled"),
    ("pending", "failed"),
    ("running", "paused"),
    ("running", "completed"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("paused", "running"),
    ("paused", "cancelled"),
    ("paused", "failed"),
    ("failed", "running"),
}
ALL_PAIRS = [(a, b) for a in SessionStatus.values for b in SessionStatus.values]


def test_transition_table_is_exactly_the_architecture_one():
    table = {(a, b) for a, targets in SESSION_TRANSITIONS.items() for b in targets}
    assert table == ALLOWED


@pytest.mark.django_db
@pytest.mark.embedded
@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_transition_happens(current, target):
    session = MigrationStatus.objects.create(overall_status=current)
    updated = transition_session(session_id=session.migration_session_id, to=target)
    assert updated.overall_status == target
    if target == "running":
        assert updated.started_at is not None
        assert updated.completed_at is None
    if target in {"completed", "failed", "cancelled"}:
        assert updated.completed_at is not None


@pytest.mark.django_db
@pytest.mark.embedded
@pytest.mark.parametrize(("current", "target"), sorted(set(ALL_PAIRS) - ALLOWED))
def test_forbidden_transition_is_refused_and_changes_nothing(current, target):
    session = MigrationStatus.objects.create(overall_status=current)
    before = MigrationStatus.objects.filter(pk=session.pk).values().get()
    with pytest.raises(StateTransitionError) as raised:
        transition_session(session_id=session.migration_session_id, to=target)
    assert current in str(raised.value)
    assert target in str(raised.value)
    assert MigrationStatus.objects.filter(pk=session.pk).values().get() == before


@pytest.mark.django_db
@pytest.mark.embedded
def test_expected_state_restricts_the_source():
    session = MigrationStatus.objects.create(overall_status="pending")
    with pytest.raises(StateTransitionError):
        transition_session(
            session_id=session.migration_session_id, to="running", expected=("paused", "failed")
        )
    session.refresh_from_db()
    assert session.overall_status == "pending"


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_two_concurrent_transitions_exactly_one_wins():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency is proven on PostgreSQL")
    for _ in range(5):
        session = MigrationStatus.objects.create(overall_status="running")
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def attempt(target: str, session=session, barrier=barrier, outcomes=outcomes) -> None:
            close_old_connections()
            try:
                barrier.wait()
                transition_session(session_id=session.migration_session_id, to=target)
                outcomes.append(f"won:{target}")
            except StateTransitionError:
                outcomes.append("lost")
            finally:
                connection.close()

        threads = [threading.Thread(target=attempt, args=(t,)) for t in ("paused", "completed")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        session.refresh_from_db()
        winners = [o for o in outcomes if o.startswith("won:")]
        assert len(winners) == 1
        assert outcomes.count("lost") == 1
        assert session.overall_status == winners[0].removeprefix("won:")


@pytest.mark.django_db
@pytest.mark.embedded
def test_entity_transition_is_compare_and_set():
    session = MigrationStatus.objects.create()
    control = MigrationControl.objects.create(session=session, entity_type="office")
    assert transition_entity(control_id=control.pk, to=EntityState.RUNNING, expected="pending")
    # A second copy trying the same move loses quietly.
    assert not transition_entity(control_id=control.pk, to=EntityState.RUNNING, expected="pending")
    assert transition_entity(control_id=control.pk, to=EntityState.COMPLETED, expected="running")
    control.refresh_from_db()
    assert control.state == "completed"
    assert control.finished_at is not None
    with pytest.raises(StateTransitionError):
        transition_entity(control_id=control.pk, to=EntityState.RUNNING, expected="completed")


@pytest.mark.django_db
@pytest.mark.embedded
def test_entity_lists_are_disjoint_and_follow_control_rows():
    session = MigrationStatus.objects.create()
    states = {
        "office": "completed",
        "doctor": "running",
        "patient": "pending",
        "visit": "blocked",
        "bill": "paused",
    }
    for position, (entity, state) in enumerate(states.items()):
        MigrationControl.objects.create(
            session=session, entity_type=entity, state=state, position=position
        )
    refresh_entity_lists(session_id=session.migration_session_id)
    session.refresh_from_db()
    assert session.entities_completed == ["office"]
    assert session.entities_running == ["doctor"]
    assert session.entities_pending == ["patient", "bill"]
    assert session.entities_failed == ["visit"]
