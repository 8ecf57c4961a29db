"""Markdown pieces of the benchmark pages: numbers as printed and GitHub-flavoured tables."""

from __future__ import annotations

from collections.abc import Sequence

DASH = "–"


def number(value: float | None, digits: int = 3, signed: bool = False) -> str:
    """``value`` with ``digits`` decimals (a dash for None); what rounds to zero prints without a minus sign."""
    if value is None:
        return DASH
    return f"{{:{'+' if signed else ''}.{digits}f}}".format(round(value, digits) + 0.0)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured markdown table (``|`` inside a cell escaped)."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), line(["---"] * len(header)), *[line(r) for r in rows]]
