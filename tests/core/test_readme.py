"""The README and docs/ say what the code does: the test command CI runs, the Python example
(run as written, top-level imports only), the CLI table against the parser, the links, and
every file and name that docs/architecture.md's data flows cite."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "src" / "napari_sammed"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def test_readme_holds_the_test_command_ci_runs_and_stays_short():
    text = README.read_text()
    assert "python -m pytest" in text  # .ci/run runs exactly this
    assert len(text.splitlines()) <= 210, "keep the README short; details go to docs/"


def test_python_examples_import_only_from_the_top_level():
    import napari_sammed

    for block in python_blocks(README):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("napari_sammed"):
                assert node.module == "napari_sammed", f"README imports {node.module}: export it at the top level"
                for alias in node.names:
                    assert alias.name in napari_sammed.__all__, alias.name
                    getattr(napari_sammed, alias.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ns":
                assert node.attr in napari_sammed.__all__, f"ns.{node.attr} is not in napari_sammed.__all__"
                getattr(napari_sammed, node.attr)


def test_python_api_example_runs_as_written(monkeypatch, ct_volume, ct_labels):
    """The README's API block as written (the weight-free engine for speed), on the sample CT's liver."""
    import napari_sammed as ns

    real = ns.load_model
    monkeypatch.setattr(ns, "load_model", lambda *a, **k: real(kind="weight-free"))
    labels = np.where(np.arange(len(ct_labels))[:, None, None] == 15, (ct_labels == 5) * 5, 0).astype(np.int32)
    rows, cols = np.nonzero(labels[15])
    height, width = ct_volume.shape[1:]
    block = next(b for b in python_blocks(README) if "ns.load_model()" in b)
    names = {"ct_slices": ct_volume[15:17], "H": height, "W": width, "x0": cols.min(), "y0": rows.min(),
             "x1": cols.max(), "y1": rows.max(), "volume": ct_volume, "labels": labels}
    exec(compile(block, "README.md", "exec"), names)  # noqa: S102 - our own README
    assert names["pred"].mask.shape == (height, width) and names["pred"].mask.any()
    assert names["mask"].shape == ct_volume.shape and names["mask"][15].any()


def cli_table() -> dict[str, str]:
    """command -> its usage cell in the README's CLI table."""
    rows = re.findall(r"^\| `napari-sammed ([a-z-]+)([^`]*)` \|", README.read_text(), re.M)
    return {command: usage for command, usage in rows}


def test_cli_table_matches_the_parser():
    import argparse

    from napari_sammed.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    table = cli_table()
    assert set(table) == set(sub.choices), "README's CLI table and napari-sammed --help list other commands"
    for command, usage in table.items():
        known = {option for action in sub.choices[command]._actions for option in action.option_strings}
        for option in re.findall(r"--[a-z][a-z0-9-]*", usage):
            assert option in known, f"README: napari-sammed {command} has no {option}"


@pytest.mark.parametrize("path", [README, ARCHITECTURE, ROOT / "docs" / "benchmarks.md"], ids=lambda p: p.name)
def test_relative_links_exist(path):
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
        if not target.startswith("http"):
            assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


def defines(source: str, name: str) -> bool:
    """``name`` (or ``Class.method``) is defined at the top of ``source``."""
    tree = ast.parse(source)
    first, _, member = name.partition(".")
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == first:
            if not member:
                return True
            return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == member for n in node.body)
    return False


def test_architecture_flows_cite_files_and_names_that_exist():
    flows = ARCHITECTURE.read_text().split("## Three data flows")[1].split("\n## ")[0]
    rows = re.findall(r"^\|[^|]+\| (`[^|]+\.py`(?:, `[^|]+\.py`)*) \| ([^|]+) \|$", flows, re.M)
    assert len(rows) >= 20
    for files, names in rows:
        sources = []
        for file in re.findall(r"`([^`]+)`", files):
            assert (PACKAGE / file).is_file(), f"docs/architecture.md cites missing {file}"
            sources.append((PACKAGE / file).read_text())
        for name in re.findall(r"`([^`]+)`", names):
            assert any(defines(s, name) for s in sources), f"docs/architecture.md: {name} is not in {files}"
