"""Writing one bench run as a section of bench/RESULTS.md: machine, versions, every run's
time, and each figure as a ratio to its reference measured in the same run."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import Timing

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "# Benchmark results\n\nWritten by `make bench` / `make bench-full` (bench/run.py); each "
    "section is one run on the machine it names. Every figure is a ratio to a reference "
    "measured in the same run; a time is the median of 3 runs where one run takes under a "
    "minute (each run's seconds are listed).\n"
)


@dataclass
class Figure:
    name: str
    measured: str
    reference: str
    ratio: float | None
    target: str
    meets: bool | None
    note: str = ""


@dataclass
class Section:
    scale: int
    seed: int
    started: dt.datetime
    machine: dict[str, str]
    versions: dict[str, str]
    sizes: dict[str, int]
    timings: list[tuple[Timing, int | None]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # (run, wall seconds, seconds per stage or None, seconds of the batches) per diffmig run.
    stages: list[tuple[str, float, dict[str, float] | None, float]] = field(default_factory=list)
    profile: str = ""
    elapsed_s: float = 0.0


def machine_info(note: str) -> dict[str, str]:
    model = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    load = os.getloadavg()
    info = {
        "cpu": f"{model}, {os.cpu_count()} cores, {memory}",
        "os": f"{platform.system()} {platform.release()}",
        "load at start": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    }
    if note:
        info["note"] = note
    return info


def diffmig_commit(root: Path = ROOT) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True
        ).stdout.strip()

    stamp = root / "COMMIT"
    if not (root / ".git").exists() and stamp.exists():
        # An exported tree (git archive) says which commit it is.
        return f"{stamp.read_text().strip()} (exported tree {root})"

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "migrationsapp", "diffmig")
    return commit + (" (with uncommitted changes in migrationsapp/ or diffmig/)" if dirty else "")


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def render(section: Section) -> str:
    s = section
    lines = [
        f"\n## {s.started:%Y-%m-%d %H:%M} UTC — SCALE {s.scale:,} "
        f"({s.sizes['total']:,} rows), seed {s.seed}\n",
    ]
    for key, value in {**s.machine, **s.versions}.items():
        lines.append(f"- {key}: {value}")
    lines.append(
        "- legacy rows: "
        + ", ".join(f"{k} {v:,}" for k, v in s.sizes.items() if k != "total")
        + f"; the whole bench took {s.elapsed_s / 60:.1f} min"
    )
    lines += [
        "",
        "| figure | diffmig | reference (same run) | ratio | target | met |",
        "|---|---|---|---:|---|---|",
    ]
    for f in s.figures:
        met = "—" if f.meets is None else ("yes" if f.meets else "**no**")
        note = f" ({f.note})" if f.note else ""
        lines.append(
            f"| {f.name}{note} | {f.measured} | {f.reference} | {_ratio(f.ratio)} | "
            f"{f.target} | {met} |"
        )
    lines += [
        "",
        "| run | rows | seconds (median) | each run | rows/s |",
        "|---|---:|---:|---|---:|",
    ]
    for timing, rows in s.timings:
        rate = f"{rows / timing.seconds:,.0f}" if rows and timing.seconds else "—"
        count = f"{rows:,}" if rows is not None else "—"
        lines.append(
            f"| {timing.label} | {count} | {timing.seconds:.2f} | {timing.describe_runs()} | "
            f"{rate} |"
        )
    lines += ["", *render_stages(s.stages)]
    for skipped in s.skipped:
        lines.append(f"\n- skipped: {skipped}")
    if s.notes:
        lines.append("")
        lines += [f"- {note}" for note in s.notes]
    if s.profile:
        lines += ["", "cProfile of the baseline (`diffmig run --baseline`):", "", "```"]
        lines += [s.profile.rstrip(), "```"]
    return "\n".join(lines) + "\n"


STAGES = ("read", "transform", "validate", "write", "control")


def stage_row(label: str, wall: float, document: dict) -> tuple:
    """A diffmig run's seconds per stage, from its ``run --json`` session document (absent when
    the diffmig measured does not record them)."""
    session = document.get("session", {})
    stages = session.get("stages")
    return (label, wall, stages, float(session.get("batch_seconds") or 0.0))


def render_stages(rows: list[tuple]) -> list[str]:
    lines = [
        "Per-stage time of the first repetition of each diffmig run (seconds, summed over its "
        "batches; 'outside batches' is the rest of the command's wall time: start-up, analysis, "
        "the second pass, the session's bookkeeping; '—' when the batches ran in several "
        "processes at once and their seconds add up to more than the wall time):",
        "",
    ]
    if not rows or all(stages is None for _, _, stages, _ in rows):
        return [*lines, "not recorded by the diffmig measured (no `stages` in `run --json`)."]
    lines += [
        "| run | " + " | ".join(STAGES) + " | batches | outside batches | wall |",
        "|---|" + "---:|" * (len(STAGES) + 3),
    ]
    for label, wall, stages, batches in rows:
        cells = [f"{(stages or {}).get(name, 0.0):.2f}" for name in STAGES]
        outside = f"{wall - batches:.2f}" if batches <= wall else "—"
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {batches:.2f} | {outside} | {wall:.2f} |"
        )
    return lines


def append(section: Section, path: Path) -> str:
    text = render(section)
    if not path.exists():
        path.write_text(HEADER)
    with path.open("a") as handle:
        handle.write(text)
    return text
