"""The core's layers import only downwards: io < export, io < model < engine < volume < jobs.

Each check runs in a fresh interpreter whose import system refuses the forbidden packages, then
imports every module of the layer; one forbidden import anywhere fails it, naming the module."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = "napari_sammed.core"
GUI = ["napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "napari_sammed._napari"]
MODEL_CODE = ["torch", "segment_anything", f"{CORE}.model"]

#: layer -> what it must never import
RULES = {
    "io": [f"{CORE}.{up}" for up in ("export", "engine", "volume", "jobs")] + MODEL_CODE + GUI,
    "export": [f"{CORE}.{up}" for up in ("engine", "volume", "jobs")] + MODEL_CODE + GUI,
    "model": [f"{CORE}.{up}" for up in ("export", "engine", "volume", "jobs")] + GUI,
    "engine": [f"{CORE}.{up}" for up in ("export", "volume", "jobs")] + GUI,
    "volume": [f"{CORE}.{up}" for up in ("export", "jobs")] + GUI,
    "jobs": GUI,
}

BLOCKER = """\
import importlib, importlib.abc, pkgutil, sys
FORBIDDEN = {forbidden!r}

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
            raise ImportError(f"layering: {{name}} is forbidden here")

sys.meta_path.insert(0, Refuse())
"""

IMPORT_LAYER = """\
package = importlib.import_module({package!r})
names = [package.__name__] + [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names:
    try:
        importlib.import_module(name)
    except ImportError as error:
        sys.exit(f"{{name}}: {{error}}")
print(len(names))
"""


def run_blocked(forbidden: list[str], code: str) -> subprocess.CompletedProcess:
    script = BLOCKER.format(forbidden=forbidden) + code
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("layer", list(RULES))
def test_layer_imports_nothing_above_it(layer):
    result = run_blocked(RULES[layer], IMPORT_LAYER.format(package=f"{CORE}.{layer}"))
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 2  # the package and its modules were all imported


def test_a_forbidden_import_is_caught_and_named():
    # The engine imports the model layer; forbidding it must fail, naming the importing module.
    result = run_blocked(RULES["engine"] + [f"{CORE}.model"], IMPORT_LAYER.format(package=f"{CORE}.engine"))
    assert result.returncode != 0
    assert "napari_sammed.core.model" in result.stderr and "is forbidden here" in result.stderr
    assert result.stderr.startswith("napari_sammed.core.engine")


def test_geometry_and_the_weight_free_engine_need_no_segment_anything():
    code = """\
import numpy as np
from napari_sammed.core.engine.frame import FrameTransform  # noqa: F401 - the geometry imports alone
from napari_sammed.core.engine.families import load_model
from napari_sammed.core.engine.slice_engine import SliceEngine

image = np.zeros((64, 80), np.uint8)
image[20:40, 30:50] = 200
engine = SliceEngine(load_model(kind="weight-free"))  # through the registry, which imports every family
mask = engine.predict(engine.embed(image)[0], image.shape, box=np.array([25, 15, 55, 45])).mask
assert mask[30, 40] and not mask[5, 5], "the weight-free engine segments the bright square"
print("ok")
"""
    result = run_blocked(["segment_anything", f"{CORE}.model.sam_import", "torchvision", "timm"], code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_input_schemas_need_no_qc_module():
    # Issue 25: io/inputs and io/qc imported each other; the QC words now live in qc_vocabulary.
    code = """\
from napari_sammed.core.io.inputs import TraceCsvRow
row = TraceCsvRow.model_validate({"object_id": 1, "slice": 2, "source": "propagated", "area": 3,
                                  "stop_reason": "low_iou", "flag": "leak"})
print(row.stop_reason)
"""
    result = run_blocked([f"{CORE}.io.qc"], code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "low_iou"
