"""Entities that fail: every reason reaches the session's error summary, even when two units
of one session fail at the same moment (PostgreSQL: two connections, a row lock)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from migrationsapp.engine.errors import TerminalError
from migrationsapp.models import MigrationControl, MigrationStatus
from migrationsapp.models.choices import EntityState, SessionStatus
from migrationsapp.services.runs import fail_entity
from tests.factories import MigrationControlFactory, MigrationStatusFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _waiting_on_a_lock(pids: list[int]) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = ANY(%s)", [pids])
        return cursor.fetchone()[0]


def test_two_entities_failing_at_the_same_moment_are_both_in_the_error_summary():
    if connection.vendor != "postgresql":
        pytest.skip("two writers at once need PostgreSQL")
    session = MigrationStatusFactory(overall_status=SessionStatus.RUNNING)
    controls = [
        MigrationControlFactory(session=session, entity_type=name, state=EntityState.RUNNING)
        for name in ("office", "patient")
    ]
    pids: list[int] = []
    errors: list[BaseException] = []
    ready = threading.Barrier(len(controls) + 1)

    def fail(control: MigrationControl) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids.append(cursor.fetchone()[0])
            ready.wait(timeout=10)
            fail_entity(control=control, error=TerminalError(f"{control.entity_type} broke"))
        except BaseException as error:  # reported by the test below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=fail, args=(control,)) for control in controls]
    # Another transaction holds the session's row while both failures reach it, so that
    # they write it at the same moment once it lets go.
    with transaction.atomic():
        MigrationStatus.objects.select_for_update().get(pk=session.pk)
        for thread in threads:
            thread.start()
        ready.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _waiting_on_a_lock(pids) < len(controls):
            assert time.monotonic() < deadline, "both failures should wait on the session's row"
            time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=10)

    assert errors == []
    session.refresh_from_db()
    assert session.error_summary == {
        "entities": {"office": "office broke", "patient": "patient broke"}
    }
    states = MigrationControl.objects.filter(session=session).values_list("state", flat=True)
    assert set(states) == {EntityState.FAILED}


@pytest.mark.embedded
def test_a_refused_entity_is_named_among_the_refused_and_keeps_the_others_reasons():
    session = MigrationStatusFactory(overall_status=SessionStatus.RUNNING)
    office, patient = (
        MigrationControlFactory(session=session, entity_type=name, state=EntityState.RUNNING)
        for name in ("office", "patient")
    )

    fail_entity(control=office, error=TerminalError("source unreachable"))
    fail_entity(control=patient, error=TerminalError("too many deletes"), refused=True)

    session.refresh_from_db()
    assert session.error_summary == {
        "entities": {"office": "source unreachable", "patient": "refused: too many deletes"},
        "refused": ["patient"],
    }
