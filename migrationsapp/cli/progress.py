"""Progress bars on stderr (rich): only on a terminal, never with --json.

Each entity phase gets a bar with rows, rows/s and the time left; the analysis of a table
whose size is unknown shows a counter instead. rich is imported when bars are shown, not
when the CLI starts (it is a tenth of a second of every command's start-up).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from migrationsapp.engine.outcomes import Phase

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def wanted(options: dict, stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    return not options.get("json") and hasattr(stream, "isatty") and stream.isatty()


class RichProgress:
    """A run observer (services.runs.RunObserver) and an analysis progress callback."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[tuple[str, str], TaskID] = {}

    def phase_started(self, entity: str, phase: str, total: int) -> None:
        if not total:
            return  # nothing to show for an empty phase
        self.tasks[(entity, phase)] = self.progress.add_task(f"{entity} {phase}", total=total)

    def advanced(self, entity: str, phase: str, rows: int) -> None:
        task = self.tasks.get((entity, phase))
        if task is not None:
            self.progress.advance(task, rows)

    def analysis_callback(self) -> Callable[[str, int], None]:
        def seen(entity: str, rows: int) -> None:
            key = (entity, Phase.ANALYZE)
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(f"{entity} {Phase.ANALYZE}", total=None)
            self.progress.update(self.tasks[key], completed=rows)

        return seen


@contextmanager
def progress_bars(enabled: bool) -> Iterator[RichProgress | None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RowsPerSecond(TextColumn):
        """Rows per second, from rich's own speed estimate."""

        def __init__(self) -> None:
            super().__init__("")

        def render(self, task):  # type: ignore[override]
            speed = task.finished_speed or task.speed
            return Text(f"{speed:>9,.0f} rows/s" if speed else " " * 16)

    progress = Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        RowsPerSecond(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=False,
    )
    with progress:
        yield RichProgress(progress)
