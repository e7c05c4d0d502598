"""Import ``segment_anything`` building blocks without requiring torchvision.

``import segment_anything.modeling`` first runs the package ``__init__``, which imports the
predictor and automatic mask generator and, through them, torchvision. torchvision is not
needed for anything we use (and cannot always be installed beside a given torch build), so
when the normal import fails we load ``segment_anything.modeling`` and
``segment_anything.utils.amg`` from the installed package *without* running its top-level
``__init__``. The modules are the real, unmodified ones.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from functools import cache
from pathlib import Path


@cache
def _package_dir() -> Path:
    spec = importlib.util.find_spec("segment_anything")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("segment-anything is not installed: pip install segment-anything")
    return Path(next(iter(spec.submodule_search_locations)))


def _bare_package(name: str, path: Path) -> types.ModuleType:
    """Register an empty package module so submodules import without its ``__init__``."""
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        module.__package__ = name
        sys.modules[name] = module
    return module


def _import(submodule: str) -> types.ModuleType:
    try:
        return importlib.import_module(f"segment_anything.{submodule}")
    except ImportError as error:
        if "torchvision" not in str(error) and "segment_anything" in sys.modules:
            raise
        # Drop the half-imported package left behind by the failed __init__.
        for key in [k for k in sys.modules if k == "segment_anything" or k.startswith("segment_anything.")]:
            del sys.modules[key]
        root = _package_dir()
        _bare_package("segment_anything", root)
        _bare_package("segment_anything.utils", root / "utils")
        return importlib.import_module(f"segment_anything.{submodule}")


@cache
def modeling() -> types.ModuleType:
    """``segment_anything.modeling`` (Sam, ImageEncoderViT, PromptEncoder, MaskDecoder, ...)."""
    return _import("modeling")


@cache
def image_encoder() -> types.ModuleType:
    """``segment_anything.modeling.image_encoder`` (Block, Attention, window_partition, ...)."""
    modeling()
    return importlib.import_module("segment_anything.modeling.image_encoder")


@cache
def amg() -> types.ModuleType:
    """``segment_anything.utils.amg`` (point grids, stability score, RLE helpers)."""
    modeling()
    return _import("utils.amg")
