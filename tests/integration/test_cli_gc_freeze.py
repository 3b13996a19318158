"""The command line freezes what its start-up imported out of the garbage collector's sight
(no collection walks it again, the process's exit skips it); a command called from code,
whose process goes on (tests, call_command), freezes nothing."""

from __future__ import annotations

import gc
import io

import pytest

from migrationsapp.management.commands.diffmig import Command
from tests.integration.conftest import cli

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_command_from_the_command_line_freezes_the_start_up(unfrozen):
    command = Command(stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(SystemExit):
        # No session yet: `status` ends with its exit code, after the freeze.
        command.run_from_argv(["manage.py", "diffmig", "status", "--json"])
    assert gc.get_freeze_count() > 0


def test_a_command_called_from_code_freezes_nothing(unfrozen):
    result = cli("status", "--json")
    assert result.code != 0  # no session yet
    assert gc.get_freeze_count() == 0
