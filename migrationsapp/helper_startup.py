"""What every helper process of a command does first and last: set Django up on the caller's
settings (the partition and read-ahead helpers of ``run``, verify's processes), and end
quietly on Ctrl-C.

Nothing of Django is imported here at module level: a helper imports this module before
Django is set up.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

# 128 + SIGINT, as a shell reports a process that Ctrl-C ended.
EXIT_INTERRUPTED = 130


def setup_django(database_url: str | None = None) -> None:
    """Django set up as the caller's process has it; ``database_url`` names the control
    database when the environment does not (a spawned process)."""
    if database_url is not None:
        os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "diffmig.settings")
    from diffmig.startup import load_settings

    load_settings()
    import django

    django.setup()


def run_helper(main: Callable[[list[str]], int]) -> None:
    """Exit with ``main(argv)``'s code, Django set up first; Ctrl-C in the terminal reaches
    the whole process group, and the command that started the helper says it once."""
    try:
        setup_django()
        code = main(sys.argv[1:])
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    sys.exit(code)
