"""A helper process ends quietly on Ctrl-C, with the shell's code for it, and otherwise with
its work's own exit code."""

from __future__ import annotations

import pytest

from migrationsapp.helper_startup import EXIT_INTERRUPTED, run_helper


def test_ctrl_c_ends_a_helper_with_130_and_no_traceback(capsys):
    def interrupted(argv: list[str]) -> int:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as ended:
        run_helper(interrupted)

    assert ended.value.code == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == ""


def test_a_helper_exits_with_its_work_s_code():
    with pytest.raises(SystemExit) as ended:
        run_helper(lambda argv: 1)

    assert ended.value.code == 1
