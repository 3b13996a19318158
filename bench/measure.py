"""Timing helpers: a child process with its peak RSS, and the median of repeated runs.

A child's peak resident set comes from ``wait4`` (Linux reports the largest of the process
and the children it waited for, so a worker's work horses count too).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A run shorter than this is repeated and its median kept.
REPEAT_UNDER_S = 60.0


@dataclass
class Proc:
    argv: list[str]
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float


def run_process(argv: list[str], *, env: dict[str, str], check: bool = True) -> Proc:
    """Run ``argv`` to its end; its wall time and peak RSS."""
    started = time.perf_counter()
    with open(os.devnull, "rb") as stdin:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # Both pipes are drained by threads; the status is collected by wait4 for its rusage.
        returncode, out, err, rss = _drain_then_wait4(proc)
    seconds = time.perf_counter() - started
    result = Proc(argv, seconds, returncode, out, err, rss)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:6])} … exited {result.returncode}: "
            f"{(result.stderr or result.stdout).strip()[-2000:]}"
        )
    return result


def _drain_then_wait4(proc: subprocess.Popen) -> tuple[int, str, str, float]:
    chunks: dict[str, bytes] = {}

    def drain(name: str, stream) -> None:
        chunks[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout)),
        threading.Thread(target=drain, args=("err", proc.stderr)),
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    proc.stdout.close()
    proc.stderr.close()
    out = chunks.get("out", b"").decode("utf-8", "replace")
    err = chunks.get("err", b"").decode("utf-8", "replace")
    return proc.returncode, out, err, usage.ru_maxrss / 1024


@dataclass
class Background:
    """A long-lived child (an RQ worker) stopped with SIGTERM; its peak RSS when it ends."""

    proc: subprocess.Popen
    peak_rss_mb: float = 0.0

    @classmethod
    def start(cls, argv: list[str], *, env: dict[str, str], log_path: str) -> Background:
        log = open(log_path, "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return cls(proc)

    def stop(self, timeout_s: float = 120.0) -> float:
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.peak_rss_mb = usage.ru_maxrss / 1024
                return self.peak_rss_mb
            if time.monotonic() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
            time.sleep(0.1)


@dataclass
class Timing:
    """One measured step: every repetition's seconds, the median, and what each run returned."""

    label: str
    runs: list[float] = field(default_factory=list)
    results: list = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(self.runs)

    def describe_runs(self) -> str:
        return ", ".join(f"{s:.2f}" for s in self.runs)


def repeat(
    label: str,
    step: Callable[[], tuple[float, object]],
    *,
    before: Callable[[], None] | None = None,
    max_runs: int = 3,
) -> Timing:
    """Run ``step`` (which returns its own seconds and a result); again, up to ``max_runs``
    times, while each run takes under ``REPEAT_UNDER_S``; ``before`` resets the state first."""
    timing = Timing(label)
    for index in range(max_runs):
        if before is not None and index > 0:
            before()
        seconds, result = step()
        timing.runs.append(seconds)
        timing.results.append(result)
        if seconds >= REPEAT_UNDER_S:
            break
    return timing
