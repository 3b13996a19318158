"""What the fault and hostile-input tests tried, and what held: the source of docs/reliability.md.

A test calls ``record(...)`` once per class of fault or input it exercised, with the number of
cases it tried and how many held (the outcome the test asserts). Each pytest process appends
JSON lines to ``var/reliability/<pid>.jsonl`` (so xdist workers never share a file);
``python -m tests.support.reliability_report`` folds them into ``docs/reliability.md``.

A record is written only after the test's assertions have passed for those cases, so a
failing test leaves no claim behind.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

OUTPUT_DIR = Path(__file__).resolve().parents[2] / "var" / "reliability"


def record(area: str, case: str, *, tried: int, held: int, outcome: str) -> None:
    """Note that ``tried`` cases of ``case`` (in ``area``) ran and ``held`` gave ``outcome``.

    ``area`` groups the table (e.g. "hostile mapping", "dirty data", "faults"); ``case`` names
    the class of input or fault; ``outcome`` says what holding means, in a user's words.
    """
    if tried < 0 or held < 0 or held > tried:
        raise ValueError(f"reliability record for {case!r}: held {held} of tried {tried}")
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    line = {
        "area": area,
        "case": case,
        "tried": tried,
        "held": held,
        "outcome": outcome,
        "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with (OUTPUT_DIR / f"{os.getpid()}.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
