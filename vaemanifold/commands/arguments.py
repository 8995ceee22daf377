"""Argument types shared by the commands: counts are refused at parse time when they make no sense."""

from __future__ import annotations

import argparse
from typing import Callable


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, else a usage error naming the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


#: Counts of things (pairs, epochs, threads, ...): at least 1.
positive_int = at_least(1)
#: Counts where 0 means "none" (e.g. --frechet-points 0 skips the Fréchet means).
non_negative_int = at_least(0)
