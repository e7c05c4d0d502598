"""Shared fixtures: real data, random-init checkpoints in the exact official layouts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

# napari/Qt write settings and caches; keep them out of the user's home.
_TMP_HOME = tempfile.mkdtemp(prefix="napari-sammed-tests-")
os.environ.setdefault("XDG_CONFIG_HOME", str(Path(_TMP_HOME) / "config"))
os.environ.setdefault("XDG_CACHE_HOME", str(Path(_TMP_HOME) / "cache"))
os.environ.setdefault("NAPARI_CONFIG", str(Path(_TMP_HOME) / "napari-settings.yaml"))

from napari_sammed.core.model.build import build_sam_vit  # noqa: E402
from napari_sammed.core.model.specs import VIT_SPECS, ModelSpec  # noqa: E402

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "src" / "napari_sammed" / "_data"
#: SAM-Med2D's data_demo (5 CT slices, 30 masks), copied with its licence so a bare clone tests.
DATA_DEMO = Path(__file__).resolve().parent / "data" / "sammed2d" / "data_demo"

#: A SAM-Med2D with the real structure (adapters, windowed + global blocks, 16x16 grid,
#: full prompt encoder and decoder) but a narrow, shallow encoder, for fast behavioural tests.
SMALL_SPEC = ModelSpec("sam-med2d", 256, 64, 3, 2, (1,), True, "sam-med2d")


def write_official_checkpoint(model: torch.nn.Module, path: Path, optimizer_steps: int = 0) -> Path:
    """Save as SAM-Med2D does: ``{'model': state_dict, 'optimizer': <pickled Adam object>}``."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for _ in range(optimizer_steps):  # optional optimizer state (exp_avg tensors)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()
        optimizer.zero_grad()
    torch.save({"model": model.state_dict(), "optimizer": optimizer}, path)
    return path


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_sam_vit(SMALL_SPEC)
    return write_official_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "sam-med2d_small.pth")


@pytest.fixture(scope="session")
def full_checkpoint(tmp_path_factory) -> Path:
    """The full-size SAM-Med2D (271 M parameters) in the official layout, random weights."""
    torch.manual_seed(0)
    model = build_sam_vit(VIT_SPECS["sam-med2d"])
    return write_official_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "sam-med2d_b.pth", 0)


def _nifti(name: str):
    import nibabel as nib

    return nib.load(str(PACKAGE_DATA / name))


def displayed(path) -> np.ndarray:
    """A NIfTI file's voxels as napari shows them (radiological order), like every reader path."""
    from napari_sammed.core.io.read import read_volume

    return read_volume(path).data


@pytest.fixture(scope="session")
def ct_volume() -> np.ndarray:
    """Real CT (Z, Y, X) int16 HU."""
    return displayed(PACKAGE_DATA / "example_ct_sm.nii.gz")


@pytest.fixture(scope="session")
def ct_labels() -> np.ndarray:
    return displayed(PACKAGE_DATA / "example_seg.nii.gz")


@pytest.fixture(scope="session")
def mr_volume() -> np.ndarray:
    return displayed(PACKAGE_DATA / "example_mr_sm.nii.gz")


@pytest.fixture(scope="session")
def mr_labels() -> np.ndarray:
    return displayed(PACKAGE_DATA / "example_seg_mr.nii.gz")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / float(total)


def middle_slice(labels: np.ndarray, label: int, axis: int = 0) -> int:
    """The middle slice holding ``label``; of an even count the lower one, which is the slice the
    measured numbers in the tests came from before volumes were shown head first."""
    other = tuple(i for i in range(labels.ndim) if i != axis)
    present = np.flatnonzero((labels == label).any(axis=other))
    return int(present[(len(present) - 1) // 2])


def bbox_xyxy(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], float)
