"""Where a click falls on a slice's mask: under it, deep inside it, or (obeyed on its own) as a
small disc. Slice coordinates are (x, y) pixels."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def with_disc(mask: np.ndarray | None, shape: tuple[int, int], x: float, y: float, positive: bool) -> np.ndarray:
    """``mask`` (None: empty) with a small disc at (x, y) added (positive) or removed: a click
    obeyed on its slice alone."""
    base = np.zeros(shape, bool) if mask is None else mask.copy()
    radius = max(2.0, max(shape) / 64)
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    disc = (rows + 0.5 - y) ** 2 + (cols + 0.5 - x) ** 2 <= radius**2
    return base | disc if positive else base & ~disc


def holds(mask: np.ndarray | None, x: float, y: float) -> bool:
    """Whether ``mask`` (None: empty) holds the pixel under (x, y)."""
    if mask is None:
        return False
    return bool(mask[int(np.clip(y, 0, mask.shape[0] - 1)), int(np.clip(x, 0, mask.shape[1] - 1))])


def deep_inside(mask: np.ndarray | None, x: float, y: float) -> bool:
    """Whether (x, y) lies in the core of ``mask``: at least 0.8 of its greatest depth from the edge
    (a click there is about the whole object, one near the edge about its outline)."""
    if mask is None:
        return False
    if not holds(mask, x, y):
        return False
    row, col = int(np.clip(y, 0, mask.shape[0] - 1)), int(np.clip(x, 0, mask.shape[1] - 1))
    depth = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    return depth[row, col] >= max(2.0, 0.8 * depth.max())
