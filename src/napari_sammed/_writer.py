"""npe2 writers for label layers: NIfTI with the source geometry, and TIFF with spacing."""

from __future__ import annotations

import numpy as np

from .core.io.write import label_dtype, write_nifti, write_tiff


def layer_geometry(meta: dict) -> dict:
    """A layer's saved geometry: its ``metadata`` (source affine, ...) with the scale as fallback."""
    geometry = dict(meta.get("metadata") or {})
    if not geometry.get("spacing") and meta.get("scale") is not None:
        geometry["spacing"] = [float(s) for s in meta["scale"]]
    return geometry


# napari's save dialog has already asked before replacing a file, hence overwrite=True.
def write_labels_nifti(path: str, data: np.ndarray, meta: dict) -> list[str]:
    return [str(write_nifti(path, data, layer_geometry(meta), label_dtype(data), overwrite=True))]


def write_labels_tiff(path: str, data: np.ndarray, meta: dict) -> list[str]:
    return [str(write_tiff(path, data, layer_geometry(meta), overwrite=True, labels=True))]
