"""npe2 writers for label layers: NIfTI with the source geometry, and TIFF with spacing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def _atomic_target(path: str) -> tuple[str, str]:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".napari-sammed-", suffix="".join(target.suffixes), dir=target.parent)
    os.close(fd)
    return tmp, str(target)


def labels_to_nifti(data: np.ndarray, meta: dict):
    """A nibabel image of ``data`` (Z, Y, X) with the source affine (or the layer spacing)."""
    import nibabel as nib

    affine = meta.get("affine")
    if affine is None:
        spacing = meta.get("spacing") or [1.0] * data.ndim
        affine = np.diag([*list(spacing)[::-1], 1.0])
    array = np.asarray(data)
    dtype = np.uint8 if array.max(initial=0) < 256 and array.min(initial=0) >= 0 else np.int32
    return nib.Nifti1Image(np.ascontiguousarray(array.astype(dtype).T), np.asarray(affine, float))


def write_labels_nifti(path: str, data: np.ndarray, meta: dict) -> list[str]:
    import nibabel as nib

    tmp, target = _atomic_target(path)
    try:
        nib.save(labels_to_nifti(data, meta.get("metadata", {}) | meta), tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return [target]


def write_labels_tiff(path: str, data: np.ndarray, meta: dict) -> list[str]:
    import tifffile

    spacing = (meta.get("metadata", {}) or {}).get("spacing") or list(meta.get("scale", [1.0] * np.ndim(data)))
    tmp, target = _atomic_target(path)
    try:
        kwargs = {"imagej": True, "metadata": {"axes": "ZYX" if np.ndim(data) == 3 else "YX"}}
        if np.ndim(data) == 3:
            kwargs["metadata"]["spacing"] = float(spacing[0])
        kwargs["resolution"] = (1.0 / float(spacing[-1]), 1.0 / float(spacing[-2]))
        array = np.asarray(data)
        array = array.astype(np.uint16) if array.max(initial=0) < 65536 and array.min(initial=0) >= 0 else array.astype(np.float32)
        tifffile.imwrite(tmp, array, **kwargs)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return [target]
