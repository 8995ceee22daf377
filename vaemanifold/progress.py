"""Progress bars that suit where the output goes.

On a terminal, a tqdm bar. Elsewhere (a log file, CI, a pipe) the same bar
is written as sparse complete lines instead of hundreds of carriage-return
updates: at most one every :data:`LOG_INTERVAL` seconds, plus the final state.
"""

from __future__ import annotations

import sys
from typing import Iterable, Optional, TextIO

from tqdm import tqdm

#: Seconds between progress lines when the output is not a terminal.
LOG_INTERVAL = 30.0


class _Lines:
    """A file-like that turns tqdm's carriage-return redraws into whole lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class _LogBar(tqdm):
    """A tqdm bar whose postfix waits for the next periodic line instead of forcing a redraw."""

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)


def progress(
    iterable: Iterable,
    desc: str,
    unit: str = "it",
    total: Optional[int] = None,
    enabled: bool = True,
    stream: Optional[TextIO] = None,
) -> tqdm:
    """A tqdm bar over ``iterable`` (``set_postfix`` and the rest work as usual).

    Args:
        desc, unit, total: as for tqdm.
        enabled: False gives a silent bar.
        stream: where to write (default ``sys.stderr``, read at call time).
    """
    stream = sys.stderr if stream is None else stream
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if stream.isatty():
        return tqdm(iterable, desc=desc, unit=unit, total=total, file=stream, leave=True)
    return _LogBar(
        iterable, desc=desc, unit=unit, total=total, file=_Lines(stream), mininterval=LOG_INTERVAL, ascii=True, leave=True
    )
