"""docs/reliability.md is folded from the records the fault and hostile-input tests leave."""

from __future__ import annotations

import json

import pytest

from tests.support import reliability
from tests.support.reliability_report import load, render


def test_records_of_several_processes_are_summed_per_case(tmp_path, monkeypatch):
    monkeypatch.setattr(reliability, "OUTPUT_DIR", tmp_path)
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/unit/test_x.py::test_a (call)")
    reliability.record("faults", "server restarted", tried=3, held=3, outcome="run resumes")
    # A second process (an xdist worker) writes a file of its own.
    (tmp_path / "other.jsonl").write_text(
        json.dumps(
            {
                "area": "faults",
                "case": "server restarted",
                "tried": 2,
                "held": 2,
                "outcome": "run resumes",
                "test": "tests/integration/test_y.py::test_b",
            }
        )
        + "\n"
    )
    reliability.record("web", "formula in a cell", tried=6, held=6, outcome="quoted")

    text = render(load(tmp_path))

    expected = (
        "| server restarted | 5 | 5 | run resumes | "
        "`tests/integration/test_y.py`, `tests/unit/test_x.py` |"
    )
    assert expected in text
    assert text.index("## faults") < text.index("## web")
    assert "| formula in a cell | 6 | 6 | quoted | `tests/unit/test_x.py` |" in text


def test_a_record_cannot_claim_more_held_than_tried(tmp_path, monkeypatch):
    monkeypatch.setattr(reliability, "OUTPUT_DIR", tmp_path)
    with pytest.raises(ValueError, match="held 3 of tried 2"):
        reliability.record("faults", "x", tried=2, held=3, outcome="y")
    assert list(tmp_path.iterdir()) == []
