"""Tables as the CLI and the benchmarks print them: aligned text for a terminal, Markdown for
the docs. In both, the first ``left`` columns are left-aligned (names), the others right-aligned
(numbers)."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """``header`` and ``rows`` of cells as a Markdown table."""
    align = ["---" if i < left else "---:" for i in range(len(header))]
    lines = [header, align, *([str(cell) for cell in row] for row in rows)]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1,
               rule_before_last: bool = False) -> str:
    """``header`` and ``rows`` as aligned text, columns two spaces apart; ``rule_before_last``:
    a line of dashes before the last row (a total)."""
    cells = [[str(cell) for cell in line] for line in (header, *rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
             .rstrip() for line in cells]
    if rule_before_last and rows:
        lines.insert(-1, "-" * len(max(lines, key=len)))
    return "\n".join(lines)
