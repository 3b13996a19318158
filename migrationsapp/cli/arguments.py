"""Argument types of the command line: a bad value is a usage error (exit 2), named and explained.

``float()`` alone accepts ``nan``, ``inf`` and any size; these types accept only what the
option means, so nothing past the parser sees a value it would have to doubt.
"""

from __future__ import annotations

import argparse
import math


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number: give {what}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number: give {what}")
    return value


def share(text: str) -> float:
    """A share from 0 to 1 inclusive (``--max-delete-share``)."""
    what = "a share from 0 to 1, e.g. 0.05 for 5 %"
    value = _number(text, what)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is outside 0 to 1: give {what}")
    return value


def seconds(text: str) -> float:
    """A duration in seconds, zero or more (``--timestamp-overlap``)."""
    what = "seconds, 0 or more"
    value = _number(text, what)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative: give {what}")
    return value
