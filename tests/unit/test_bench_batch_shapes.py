"""bench/batch_shapes.py at a tiny size, so that it cannot rot: every step runs, the Arrow
round trip gives the batch back exactly; no time is asserted."""

from __future__ import annotations

from bench.batch_shapes import measure, report


def test_every_shape_is_measured_and_the_arrow_round_trip_is_exact():
    results = measure(50, 1)  # measure() asserts the round trip

    text = report(50, 1, results)

    assert len(results) == 6
    assert all(ms >= 0 for _, ms in results)
    for label, _ in results:
        assert f"| {label} |" in text
