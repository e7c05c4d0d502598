"""No source file grows past 400 lines: a module that nears it is split along a seam first."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "napari_sammed"
MAX_LINES = 400


def test_no_source_file_is_over_400_lines():
    sizes = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in PACKAGE.rglob("*.py")}
    assert len(sizes) > 20  # the package was found
    offenders = [f"{path.relative_to(PACKAGE)}: {lines} lines" for path, lines in sorted(sizes.items())
                 if lines > MAX_LINES]
    assert offenders == [], f"over {MAX_LINES} lines (split along a seam):\n" + "\n".join(offenders)
