"""The CLI's progress bars: drawn on request with rich, which the CLI's start-up never imports."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from migrationsapp.cli.progress import progress_bars, wanted

ROOT = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_show_each_phase_its_rows_and_the_analysis_counter(monkeypatch):
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    with progress_bars(True) as bars:
        bars.phase_started("patient", "upsert", 10)
        bars.advanced("patient", "upsert", 4)
        bars.phase_started("office", "delete", 0)  # an empty phase gets no bar
        bars.analysis_callback()("doctor", 1234)
    drawn = screen.getvalue()

    assert "patient upsert" in drawn and "4/10" in drawn
    assert "doctor analyze" in drawn and "office delete" not in drawn


def test_no_bars_without_a_terminal_or_with_json():
    assert not wanted({}, io.StringIO())
    assert not wanted({"json": True}, Terminal())
    assert wanted({}, Terminal())
    with progress_bars(False) as bars:
        assert bars is None


def test_the_cli_starts_without_importing_rich():
    env = {**os.environ, "DATABASE_URL": "", "DJANGO_SETTINGS_MODULE": "diffmig.settings"}
    probe = (
        "import sys, django; django.setup(); from migrationsapp.cli import registry; "
        "print('rich' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
