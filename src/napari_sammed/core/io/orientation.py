"""The radiological display order of volumes with an affine, and the way back to the source's.

Readers present every NIfTI and DICOM volume as a (Z, Y, X) array whose axes run towards the
patient's inferior, posterior and left. napari draws rows top-down and columns left-right, so an
axial slice shows anterior at the top and the patient's left on the screen's right, and coronal
and sagittal views show superior at the top: the radiological convention, whatever order the
file stored its voxels in. Writers undo the reordering, so a written file has the source's exact
voxel order and affine.
"""

from __future__ import annotations

import numpy as np

#: DICOM's patient space (LPS) to NIfTI's (RAS).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Directions of the (i, j, k) axes of ``data.T`` in display order (nibabel's axis codes).
DISPLAY_AXCODES = ("L", "P", "I")


def _orientation(affine_ras: np.ndarray) -> np.ndarray | None:
    from nibabel.orientations import io_orientation

    ornt = io_orientation(np.asarray(affine_ras, float))
    return None if np.isnan(ornt).any() else ornt


def source_axcodes(affine_ras: np.ndarray) -> tuple[str, ...] | None:
    """The directions the source's (i, j, k) axes run towards (None for a degenerate affine)."""
    from nibabel.orientations import ornt2axcodes

    ornt = _orientation(affine_ras)
    return None if ornt is None else tuple(ornt2axcodes(ornt))


def _reorder(data_ijk: np.ndarray, start: tuple[str, ...], end: tuple[str, ...]) -> np.ndarray:
    from nibabel.orientations import apply_orientation, axcodes2ornt, ornt_transform

    return apply_orientation(data_ijk, ornt_transform(axcodes2ornt(start), axcodes2ornt(end)))


def to_display(data_kji: np.ndarray, axcodes: tuple[str, ...] | None) -> np.ndarray:
    """A source volume (its (i, j, k) voxels transposed to (k, j, i)) in radiological order."""
    if axcodes is None or data_kji.ndim != 3 or tuple(axcodes) == DISPLAY_AXCODES:
        return data_kji
    return _reorder(data_kji.T, tuple(axcodes), DISPLAY_AXCODES).T


def to_source(data_display: np.ndarray, axcodes: tuple[str, ...] | None) -> np.ndarray:
    """Undo :func:`to_display`: the (k, j, i) array of the source's voxel order."""
    if axcodes is None or data_display.ndim != 3 or tuple(axcodes) == DISPLAY_AXCODES:
        return data_display
    return _reorder(data_display.T, DISPLAY_AXCODES, tuple(axcodes)).T


def display_spacing(spacing_kji: tuple[float, ...], axcodes: tuple[str, ...] | None) -> tuple[float, ...]:
    """Per-axis spacing of the displayed array, from the source's (k, j, i) spacing."""
    if axcodes is None or len(spacing_kji) != 3:
        return tuple(spacing_kji)
    axis_of = {code: axis for axis, pair in enumerate(("LR", "PA", "IS")) for code in pair}
    zooms_ijk = spacing_kji[::-1]
    display_ijk = [0.0] * 3
    for source_axis, code in enumerate(axcodes):
        display_ijk[axis_of[code]] = zooms_ijk[source_axis]
    return tuple(display_ijk[::-1])


def display_affine(affine: np.ndarray, axcodes: tuple[str, ...] | None, shape_kji: tuple[int, ...]) -> np.ndarray:
    """The affine of the displayed array's reversed axes, from the source's (same world space)."""
    from nibabel.orientations import axcodes2ornt, inv_ornt_aff, ornt_transform

    affine = np.asarray(affine, float)
    if axcodes is None or len(shape_kji) != 3 or tuple(axcodes) == DISPLAY_AXCODES:
        return affine
    transform = ornt_transform(axcodes2ornt(tuple(axcodes)), axcodes2ornt(DISPLAY_AXCODES))
    return affine @ inv_ornt_aff(transform, tuple(shape_kji[::-1]))
