"""One step of a front: the prompt for slice k + step from the mask on slice k, and the rule
that accepts or stops on what comes back. Shared by :mod:`.propagation` (fronts from seeds) and
:mod:`.annotator` (re-propagation after an interaction); slice pixel coordinates (x, y).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..engine.frame import mask_box
from ..engine.slice_engine import Prediction, Prompt
from ..settings import PropagationSettings


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks (1.0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else float(np.count_nonzero(a & b) / union)


def enlarged_box(mask: np.ndarray, margin: float, min_margin: float) -> np.ndarray:
    """XYXY box (pixel edges) around a mask, grown per side by ``margin`` x size (>= min_margin)."""
    x0, y0, x1, y1 = mask_box(mask)
    grow_x = max(margin * (x1 - x0), min_margin)
    grow_y = max(margin * (y1 - y0), min_margin)
    h, w = mask.shape
    return np.array([max(x0 - grow_x, 0), max(y0 - grow_y, 0), min(x1 + grow_x, w), min(y1 + grow_y, h)], float)


def interior_points(mask: np.ndarray, count: int) -> np.ndarray:
    """``count`` points (x, y) deep inside ``mask``: distance-transform maxima, kept apart."""
    depth = ndi.distance_transform_edt(mask)
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    points = []
    for _ in range(count):
        r, c = np.unravel_index(int(np.argmax(depth)), depth.shape)
        radius = depth[r, c]
        if radius <= 0:
            break
        points.append((c + 0.5, r + 0.5))
        depth[(yy - r) ** 2 + (xx - c) ** 2 <= radius**2] = 0
    return np.array(points, float).reshape(-1, 2)


def next_slice_prompt(engine, settings: PropagationSettings, mask: np.ndarray, low_res: np.ndarray,
                      box: np.ndarray | None = None, interior: bool = True) -> Prompt:
    """The prompt recipe for the slice after ``mask``: its enlarged box, its logits as mask
    prompt and inner points, as ``settings`` (resolved for ``engine``) ask."""
    s = settings
    if box is None:
        box = enlarged_box(mask, s.box_margin, s.min_margin)
    points = labels = None
    if interior and s.interior_points:
        points = interior_points(mask, s.interior_points)
        labels = np.ones(len(points), int)
    mask_input = engine.mask_prompt(low_res) if s.use_mask_prompt else None
    return Prompt(points, labels, box, mask_input)


def judge(prediction: Prediction, neighbour_iou: float, settings: PropagationSettings) -> str:
    """Why a front must stop at this prediction (a ``STOP_REASONS`` key), or "" to go on."""
    s = settings
    if int(prediction.mask.sum()) < max(s.min_area, 1):
        return "empty"
    if prediction.iou < s.min_iou:
        return "low_iou"
    if neighbour_iou < s.min_neighbour_iou:
        return "low_neighbour_iou"
    return ""
