#!/usr/bin/env python
"""Django's command-line utility for diffmig (``diffmig …`` runs its `diffmig` command)."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "diffmig.settings")
    from diffmig.startup import run_command

    run_command(sys.argv)


if __name__ == "__main__":
    main()
