"""Evaluation metrics of interactive 3D segmentation, after the CVPR 2025 challenge
"Foundation Models for Interactive 3D Biomedical Image Segmentation" (CVPR25_iter_eval.py).

Dice, normalised surface distance (surface Dice) at a tolerance in mm, the challenge's rule that
NSD counts only when Dice > 0.2, the simulated next click (centre of the largest error), and the
area under the per-click curve (DSC_AUC, NSD_AUC). Volumes are boolean arrays in (Z, Y, X) order;
any nonzero voxel of a non-boolean array counts as inside.

NSD here is measured between border voxels (voxel centres), not between the surface elements of
the DeepMind ``surface_distance`` package the challenge imports, so values can differ from the
leaderboard's on the same masks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import InputError

#: The challenge scores NSD as 0 unless Dice exceeds this.
PROTOCOL_MIN_DICE = 0.2

_FACE_NEIGHBOURS = ndimage.generate_binary_structure(3, 1)
_ALL_NEIGHBOURS = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class Click:
    """A simulated click at voxel (z, y, x); ``positive`` when it marks the object."""

    z: int
    y: int
    x: int
    positive: bool


def _pair(
    prediction: np.ndarray, reference: np.ndarray, ndim: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    prediction = np.asarray(prediction).astype(bool, copy=False)
    reference = np.asarray(reference).astype(bool, copy=False)
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction {prediction.shape} and reference {reference.shape} differ in shape")
    if ndim is not None and prediction.ndim != ndim:
        raise ValueError(f"expected {ndim}D volumes (Z, Y, X), got shape {prediction.shape}")
    return prediction, reference


def _surface_args(spacing: Sequence[float], tolerance_mm: float) -> tuple[tuple[float, float, float], float]:
    values = np.asarray(spacing, dtype=float).ravel()
    if values.size != 3 or not np.all(np.isfinite(values) & (values > 0)):
        raise InputError(None, f"spacing must be three positive finite numbers (sz, sy, sx) in mm, got {spacing!r}")
    tolerance_mm = float(tolerance_mm)
    if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise InputError(None, f"tolerance_mm must be finite and >= 0, got {tolerance_mm}")
    return (float(values[0]), float(values[1]), float(values[2])), tolerance_mm


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice 2|A & B| / (|A| + |B|) of two boolean arrays of the same shape (any ndim).

    1.0 when both are empty.
    """
    prediction, reference = _pair(prediction, reference)
    total = np.count_nonzero(prediction) + np.count_nonzero(reference)
    if total == 0:
        return 1.0
    return 2.0 * np.count_nonzero(prediction & reference) / total


def _border(mask: np.ndarray) -> np.ndarray:
    # border_value=0 makes voxels on the array edge border voxels, as padding with zeros would.
    return mask & ~ndimage.binary_erosion(mask, structure=_FACE_NEIGHBOURS, border_value=0)


def nsd(
    prediction: np.ndarray,
    reference: np.ndarray,
    spacing: Sequence[float],
    tolerance_mm: float = 2.0,
) -> float:
    """Normalised surface distance (surface Dice) at ``tolerance_mm`` of two (Z, Y, X) boolean volumes.

    ``spacing`` is the voxel size (sz, sy, sx) in mm. A mask's surface is its border voxels: voxels
    of the mask with a 6-neighbour outside it (voxels on the array edge count). NSD is
    (#prediction border voxels within the tolerance of the reference border + #reference border
    voxels within the tolerance of the prediction border) / (#prediction border + #reference border),
    with Euclidean distances between voxel centres in mm and "within" meaning distance <= tolerance.
    1.0 when both masks are empty, 0.0 when exactly one is.
    """
    prediction, reference = _pair(prediction, reference, ndim=3)
    sampling, tolerance_mm = _surface_args(spacing, tolerance_mm)
    has_prediction, has_reference = prediction.any(), reference.any()
    if not (has_prediction or has_reference):
        return 1.0
    if not (has_prediction and has_reference):
        return 0.0

    # Only the objects' neighbourhood matters, which keeps a small organ in a large CT cheap: every
    # border voxel lies in the union's box, so erosion and distances to the nearest border voxel
    # computed in a box around it equal the full-volume ones. The margin of ceil(tolerance /
    # spacing) + 1 voxels also keeps the whole tolerance band of each border inside the box.
    union = ndimage.find_objects((prediction | reference).astype(np.uint8))[0]
    margins = [math.ceil(tolerance_mm / step) + 1 for step in sampling]
    box = tuple(
        slice(max(s.start - m, 0), min(s.stop + m, n))
        for s, m, n in zip(union, margins, prediction.shape, strict=True)
    )
    prediction_border = _border(prediction[box])
    reference_border = _border(reference[box])

    to_reference = ndimage.distance_transform_edt(~reference_border, sampling=sampling)
    to_prediction = ndimage.distance_transform_edt(~prediction_border, sampling=sampling)
    close_prediction = np.count_nonzero(to_reference[prediction_border] <= tolerance_mm)
    close_reference = np.count_nonzero(to_prediction[reference_border] <= tolerance_mm)
    total = np.count_nonzero(prediction_border) + np.count_nonzero(reference_border)
    return (close_prediction + close_reference) / total


def protocol_nsd(
    prediction: np.ndarray,
    reference: np.ndarray,
    spacing: Sequence[float],
    tolerance_mm: float = 2.0,
) -> float:
    """NSD as the challenge scores it: 0.0 when ``dice`` <= 0.2, else ``nsd`` (same arguments)."""
    # Check the NSD arguments first so that bad input fails whatever the Dice.
    _pair(prediction, reference, ndim=3)
    _surface_args(spacing, tolerance_mm)
    if dice(prediction, reference) <= PROTOCOL_MIN_DICE:
        return 0.0
    return nsd(prediction, reference, spacing, tolerance_mm)


def next_click(prediction: np.ndarray, reference: np.ndarray) -> Click | None:
    """The challenge's simulated next click for a (Z, Y, X) prediction of a boolean reference.

    The error (prediction XOR reference) is split into 26-connected components; the largest one
    is chosen (ties: the one whose first voxel in C order comes first). The click goes to the
    voxel of that component farthest from its outside (Euclidean distance transform in voxel
    units, as the challenge does, not mm; the array edge counts as outside); ties go to the
    first such voxel in C order. ``positive`` is True when the reference holds the voxel (a
    missed part), False for a false positive. None when the prediction has no error.
    """
    prediction, reference = _pair(prediction, reference, ndim=3)
    error = prediction ^ reference
    labels, count = ndimage.label(error, structure=_ALL_NEIGHBOURS)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = int(np.argmax(sizes))  # labels follow C order of first voxels, so ties pick the earliest
    box = ndimage.find_objects(labels)[largest - 1]
    component = np.pad(labels[box] == largest, 1)
    depth = ndimage.distance_transform_edt(component)
    # argmax keeps the first maximum in C order, and C order survives cropping and padding.
    local = np.unravel_index(int(np.argmax(depth)), depth.shape)
    z, y, x = (int(i) - 1 + s.start for i, s in zip(local, box, strict=True))
    return Click(z, y, x, bool(reference[z, y, x]))


def auc(values: Iterable[float]) -> float:
    """Trapezoid area under a per-step curve with unit spacing (DSC_AUC, NSD_AUC).

    E.g. the Dice after clicks 1..5 gives at most 4.0. 0.0 with fewer than 2 values.
    """
    curve = np.asarray(list(values), dtype=float)
    if curve.ndim != 1:
        raise ValueError(f"expected a 1D sequence of values, got shape {curve.shape}")
    if curve.size < 2:
        return 0.0
    # Written out: np.trapezoid is missing on numpy < 2.0 and np.trapz on recent numpy.
    return float(np.sum((curve[1:] + curve[:-1]) / 2.0))
