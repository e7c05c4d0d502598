"""Import ``segment_anything`` building blocks without ever running torchvision code.

``import segment_anything.modeling`` first runs the package ``__init__``, which imports the
predictor and automatic mask generator and, through them, torchvision. We need none of that,
and torchvision may be missing or broken beside a given torch build (the CPU torch on PyPI next
to a CUDA torchvision raises ``RuntimeError`` at import, not ``ImportError``). So we never
import the package itself: the installed ``segment_anything/modeling`` and ``utils/amg.py``
files are loaded, unmodified, under the private package name ``napari_sammed._segment_anything``.
Their imports are all relative, and a real ``segment_anything`` that other code imports in the
same process is left untouched. If that real package is already imported, we reuse it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from functools import cache
from pathlib import Path

ALIAS = "napari_sammed._segment_anything"


@cache
def _package_dir() -> Path:
    spec = importlib.util.find_spec("segment_anything")  # locates it without running __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("segment-anything is not installed: pip install segment-anything")
    return Path(next(iter(spec.submodule_search_locations)))


def _bare_package(name: str, path: Path) -> types.ModuleType:
    """Register an empty package module so its submodules import without any ``__init__``."""
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        module.__package__ = name
        sys.modules[name] = module
    return module


def _import(submodule: str) -> types.ModuleType:
    real = sys.modules.get("segment_anything")
    if real is not None and hasattr(real, "SamPredictor"):
        return importlib.import_module(f"segment_anything.{submodule}")
    root = _package_dir()
    _bare_package(ALIAS, root)
    _bare_package(f"{ALIAS}.utils", root / "utils")
    return importlib.import_module(f"{ALIAS}.{submodule}")


@cache
def modeling() -> types.ModuleType:
    """``segment_anything.modeling`` (Sam, ImageEncoderViT, PromptEncoder, MaskDecoder, ...)."""
    return _import("modeling")


@cache
def image_encoder() -> types.ModuleType:
    """``segment_anything.modeling.image_encoder`` (Block, Attention, window_partition, ...)."""
    return importlib.import_module(modeling().__name__ + ".image_encoder")


@cache
def amg() -> types.ModuleType:
    """``segment_anything.utils.amg`` (point grids, stability score, RLE helpers)."""
    return _import("utils.amg")
