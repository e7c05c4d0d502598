"""Markdown tables, as the CLI and the benchmarks print them (and the README quotes them)."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """``header`` and ``rows`` of cells as a Markdown table; the first ``left`` columns are
    left-aligned (names), the others right-aligned (numbers)."""
    align = ["---" if i < left else "---:" for i in range(len(header))]
    lines = [header, align, *([str(cell) for cell in row] for row in rows)]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
