"""Python's cyclic garbage collector while a run executes: far fewer collections.

A batch holds hundreds of thousands of small objects (rows, values, keys, outcomes) until it
ends. Under CPython's default thresholds (700, 10, 10) the youngest generation is collected
every 700 net allocations, so a batch's objects are promoted again and again, and every
few batches a full collection walks every object of the process: in a 50,000-row baseline
that was ten full collections and about a quarter of the process's CPU time. While a run
executes, the first threshold is raised so that a collection comes every 50,000 net
allocations instead; objects are still freed by reference counting as soon as they are
unreferenced, only reference cycles wait a little longer.

The thresholds are process-wide and runs may overlap (threads of the web process): the
first run to start raises them, the last to end puts back what it found.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

RUN_THRESHOLD = 50_000

_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections(threshold: int = RUN_THRESHOLD) -> Iterator[None]:
    """Raise the collector's first threshold to at least ``threshold`` inside the block."""
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            first, second, third = _saved
            gc.set_threshold(max(first, threshold), second, third)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
