"""The throughput chart of a session: rows/s per batch over time, as SVG coordinates.

Drawn on the server from the batch log entries' ``performance_data`` (no JavaScript
library): the template only places the numbers computed here into an inline ``<svg>``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import uuid
from dataclasses import dataclass

from django.db.models import Q

from migrationsapp.models import MigrationExecutionLog
from migrationsapp.models.choices import OperationType

# Batches further apart than this (and than 10 typical gaps) are drawn as separate lines.
PAUSE_GAP_S = 2.0


@dataclass(frozen=True)
class ThroughputChart:
    """An SVG line chart of rows/s per batch over the session's time; coordinates in pixels."""

    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    # One (line, area) per stretch of batches: a pause breaks the line instead of drawing a
    # slope across it. line: a polyline's "x,y x,y …"; area: it closed along the x axis.
    segments: list[tuple[str, str]]
    y_ticks: list[tuple[float, str]]  # (y, label)
    x_ticks: list[tuple[float, str]]  # (x, label)
    batches: int
    peak: float
    mean: float

    @property
    def bottom(self) -> int:
        return self.top + self.plot_height

    @property
    def right(self) -> int:
        return self.left + self.plot_width


def _nice_ceiling(value: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``value``: a round top for the y axis."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _seconds_label(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _rate_label(rate: float) -> str:
    return f"{rate / 1000:g}k" if rate >= 1000 else f"{rate:g}"


def batch_throughput(*, session_id: uuid.UUID) -> list[tuple[dt.datetime, float]]:
    """(time, rows/s) of every batch of the session, in order."""
    entries = (
        MigrationExecutionLog.objects.filter(
            Q(session_id=session_id)
            & Q(operation_type=OperationType.CHECKPOINT_SAVE)
            & Q(performance_data__has_key="rows_per_s")
        )
        .order_by("id")
        .values_list("timestamp", "performance_data")
    )
    return [(time, float(data.get("rows_per_s") or 0.0)) for time, data in entries]


def _downsample(samples: list[tuple[float, float]], max_points: int) -> list[tuple[float, float]]:
    """Average consecutive samples into at most ``max_points`` (time, rate) points."""
    if len(samples) <= max_points:
        return samples
    size = math.ceil(len(samples) / max_points)
    out = []
    for start in range(0, len(samples), size):
        chunk = samples[start : start + size]
        out.append((sum(t for t, _ in chunk) / len(chunk), sum(r for _, r in chunk) / len(chunk)))
    return out


def _stretches(points: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Split where the time between two points is far longer than usual (a pause, a wait)."""
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(points))
    if not gaps:
        return [points]
    threshold = max(PAUSE_GAP_S, 10 * gaps[len(gaps) // 2])
    out = [[points[0]]]
    for previous, point in itertools.pairwise(points):
        if point[0] - previous[0] > threshold:
            out.append([])
        out[-1].append(point)
    return out


def throughput_chart(
    *, session_id: uuid.UUID, width: int = 720, height: int = 180, max_points: int = 150
) -> ThroughputChart | None:
    """The chart of the session's batches, or None before the first batch."""
    batches = batch_throughput(session_id=session_id)
    if not batches:
        return None
    start = batches[0][0]
    samples = [((time - start).total_seconds(), rate) for time, rate in batches]
    points = _downsample(samples, max_points)
    left, top, right_pad, bottom_pad = 48, 10, 12, 24
    plot_width, plot_height = width - left - right_pad, height - top - bottom_pad
    span = max(samples[-1][0], 1.0)
    peak = max(rate for _, rate in samples)
    ceiling = _nice_ceiling(peak)

    def x(seconds: float) -> float:
        return round(left + seconds / span * plot_width, 1)

    def y(rate: float) -> float:
        return round(top + plot_height - rate / ceiling * plot_height, 1)

    if len(points) == 1:  # one batch: a short flat line rather than a lone dot
        points = [(0.0, points[0][1]), (span, points[0][1])]
    bottom = top + plot_height
    segments = []
    for stretch in _stretches(points):
        line = " ".join(f"{x(t)},{y(r)}" for t, r in stretch)
        segments.append((line, f"{x(stretch[0][0])},{bottom} {line} {x(stretch[-1][0])},{bottom}"))
    return ThroughputChart(
        width=width,
        height=height,
        left=left,
        top=top,
        plot_width=plot_width,
        plot_height=plot_height,
        segments=segments,
        y_ticks=[(y(ceiling * f), _rate_label(ceiling * f)) for f in (0, 0.5, 1)],
        x_ticks=[(x(0), "0 s"), (x(span), _seconds_label(span))],
        batches=len(samples),
        peak=round(peak, 1),
        mean=round(sum(r for _, r in samples) / len(samples), 1),
    )
