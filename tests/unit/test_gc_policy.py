"""Rarer garbage collections while runs execute, and the thresholds put back after the last."""

from __future__ import annotations

import gc
import threading

from migrationsapp.engine.gc_policy import RUN_THRESHOLD, fewer_collections


def test_the_thresholds_are_raised_inside_and_restored_after():
    before = gc.get_threshold()
    with fewer_collections():
        first, *rest = gc.get_threshold()
        assert first == max(before[0], RUN_THRESHOLD)
        assert tuple(rest) == before[1:]
    assert gc.get_threshold() == before


def test_overlapping_runs_restore_what_the_first_one_found():
    before = gc.get_threshold()
    started, release = threading.Event(), threading.Event()

    def other_run():
        with fewer_collections():
            started.set()
            release.wait(5)

    thread = threading.Thread(target=other_run)
    with fewer_collections():
        thread.start()
        started.wait(5)
    # The first run ended while the other still runs: the raised threshold stays.
    assert gc.get_threshold()[0] == max(before[0], RUN_THRESHOLD)
    release.set()
    thread.join(5)
    assert gc.get_threshold() == before


def test_an_error_inside_still_restores_the_thresholds():
    before = gc.get_threshold()
    try:
        with fewer_collections():
            raise RuntimeError("a unit failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
