"""Every public class and function of the core says what it is for."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "src" / "napari_sammed" / "core"


def undocumented() -> list[str]:
    missing = []
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        if not ast.get_docstring(tree):
            missing.append(f"{path.relative_to(CORE)} (module)")
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                if not ast.get_docstring(node):
                    missing.append(f"{path.relative_to(CORE)}:{node.lineno} {node.name}")
    return missing


def test_every_public_class_and_function_of_the_core_has_a_docstring():
    assert undocumented() == []
