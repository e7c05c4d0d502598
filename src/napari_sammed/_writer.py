"""npe2 writers for label layers: NIfTI with the source geometry, and TIFF with spacing."""

from __future__ import annotations

import numpy as np

from .core.atomic import atomic_write


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

    image = labels_to_nifti(data, meta.get("metadata", {}) | meta)
    return [str(atomic_write(path, lambda tmp: nib.save(image, tmp)))]


def write_labels_tiff(path: str, data: np.ndarray, meta: dict) -> list[str]:
    import tifffile

    spacing = (meta.get("metadata", {}) or {}).get("spacing") or list(meta.get("scale", [1.0] * np.ndim(data)))
    kwargs = {"imagej": True, "metadata": {"axes": "ZYX" if np.ndim(data) == 3 else "YX"}}
    if np.ndim(data) == 3:
        kwargs["metadata"]["spacing"] = float(spacing[0])
    kwargs["resolution"] = (1.0 / float(spacing[-1]), 1.0 / float(spacing[-2]))
    array = np.asarray(data)
    array = array.astype(np.uint16) if array.max(initial=0) < 65536 and array.min(initial=0) >= 0 else array.astype(np.float32)
    return [str(atomic_write(path, lambda tmp: tifffile.imwrite(tmp, array, **kwargs)))]
