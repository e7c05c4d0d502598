"""Checks of what a user hands an interactive session: each bad value is one clear InputError,
raised before anything changes."""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import InputError


def whole_number(value, what: str) -> int:
    """``value`` as an int, refusing fractions, NaN, bools and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) \
            or int(value) != value:
        raise InputError(None, f"{what} must be a whole number, got {value!r}")
    return int(value)


def object_id(value) -> int:
    """Object ids are whole numbers from 1 (0 is background in a labels layer)."""
    value = whole_number(value, "an object id")
    if value < 1:
        raise InputError(None, f"object ids start at 1 (0 is background), got {value}")
    return value


def slice_index(value, n_slices: int) -> int:
    """A slice index: a whole number in [0, n_slices)."""
    index = whole_number(value, "a slice index")
    if not 0 <= index < n_slices:
        raise InputError(None, f"slice {index} is outside the volume (0-{n_slices - 1})")
    return index


def z_range(value, index: int, n_slices: int) -> tuple[int, int] | None:
    """(first, last) slice, in either order, holding ``index``; None stays None."""
    if value is None:
        return None
    if len(value) != 2:
        raise InputError(None, f"a z-range is (first slice, last slice), got {value!r}")
    first, last = sorted(slice_index(k, n_slices) for k in value)
    if not first <= index <= last:
        raise InputError(None, f"slice {index} lies outside the z-range {first}-{last}")
    return first, last


def box(value, slice_shape: tuple[int, int]) -> np.ndarray:
    """(x0, y0, x1, y1) in slice pixels: four finite numbers, a positive size, on the slice."""
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.shape != (4,) or not np.all(np.isfinite(arr)):
        raise InputError(None, f"a box is four finite numbers (x0, y0, x1, y1), got {value!r}")
    x0, y0, x1, y1 = arr
    height, width = slice_shape
    if x1 <= x0 or y1 <= y0:
        raise InputError(None, f"box {arr.tolist()} has no area (x1 must exceed x0, y1 must exceed y0)")
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise InputError(None, f"box {arr.tolist()} lies outside the slice (x 0-{width}, y 0-{height})")
    return arr


def point(x, y, slice_shape: tuple[int, int]) -> tuple[float, float]:
    """A click (x, y) in slice pixels, on the slice."""
    height, width = slice_shape
    try:
        x, y = float(x), float(y)
    except (TypeError, ValueError):
        raise InputError(None, f"a click is two numbers (x, y), got {x!r}, {y!r}") from None
    if not (np.isfinite(x) and np.isfinite(y) and 0 <= x < width and 0 <= y < height):
        raise InputError(None, f"click ({x:g}, {y:g}) lies outside the slice (x 0-{width}, y 0-{height})")
    return x, y


def mask(value, shape: tuple[int, ...], what: str = "mask") -> np.ndarray:
    """A boolean mask of ``shape``; numbers must be 0/1 (NaN or other values are refused)."""
    arr = np.asarray(value)
    if arr.shape != tuple(shape):
        raise InputError(None, f"{what} of shape {arr.shape} does not fit {tuple(shape)}")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isin(arr, (0, 1))):
            raise InputError(None, f"{what} must be boolean (or 0/1), got values of dtype {arr.dtype}")
    return arr.astype(bool)
