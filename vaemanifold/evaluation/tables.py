"""Markdown tables for the reports: one writer, so every report escapes and aligns the same way."""

from __future__ import annotations

from typing import Iterable, Sequence


def cell(value: object) -> str:
    """A table cell: ``str(value)`` with '|' escaped (reasons and options may hold one)."""
    return str(value).replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a markdown table: the header, its rule, one line per row (each as long as the header).

    Raises:
        ValueError: a row with another number of cells than the header.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells, the header {len(header)}: {row!r}")
        lines.append("| " + " | ".join(cell(value) for value in row) + " |")
    return lines
