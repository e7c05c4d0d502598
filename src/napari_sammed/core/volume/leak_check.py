"""Leak check: flag propagated slices whose mask holds tissue unlike the seed's.

A front that leaks into a neighbour (liver into bowel, kidney past its pole) keeps a confident
predicted IoU and a smooth IoU with the previous slice, because the leak grows a little per
slice. What changes is what the mask covers: part of it no longer has the seed's intensities.
The check is advisory: it marks slices to look at and never changes a mask.

The seed's intensity range is taken from the engine's own rendering of the seed (the like-for-
like reference of ``Propagation._calibrate``), so the model's boundary style, not the leak,
sets the baseline. Intensities are the raw image values (HU for CT), smoothed inside the mask
only, so tissue just outside the boundary never bleeds into a mask pixel's value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

# A masked 3x3 mean cuts pixel noise (CT soft tissue: about 17 HU per pixel at 3 mm) about
# three-fold, so one organ's pixels stay inside its range while a neighbour's separate.
SMOOTHING = 3
# The seed's typical intensities: its 5th-95th percentile ...
RANGE_PERCENTILES = (5.0, 95.0)
# ... widened per side by this fraction of that span, for the slow drift along an organ
# (the sample CT's liver brightens by about a third of its span from middle to top).
RANGE_WIDENING = 0.25
# Flag a slice when more than this fraction of its mask lies outside the seed's range. On the
# sample CT and MR (reference mask on the middle slice, LiteMedSAM) good slices reach 0.10
# (small organs, MR) and the CT liver's leak into bowel 0.14-0.35; see the leak-check test.
LEAK_FRACTION = 0.12
MIN_PIXELS = 4  # fewer seed pixels give no usable range


@dataclass(frozen=True)
class IntensityRange:
    """The intensities a seed's tissue takes (raw image units), widened for drift."""

    low: float
    high: float


def masked_mean(image: np.ndarray, mask: np.ndarray, size: int = SMOOTHING) -> np.ndarray:
    """Each mask pixel's mean over its ``size`` x ``size`` neighbours *inside the mask* (0 elsewhere)."""
    mask = np.asarray(mask, bool)
    weight = ndi.uniform_filter(mask.astype(np.float32), size)
    total = ndi.uniform_filter(np.where(mask, np.asarray(image, np.float32), 0.0), size)
    return np.where(mask, total / np.maximum(weight, 1e-6), 0.0)


def intensity_range(image: np.ndarray | None, mask: np.ndarray) -> IntensityRange | None:
    """The seed's intensity range on its slice; None when the mask is too small to tell."""
    mask = np.asarray(mask, bool)
    if image is None or np.count_nonzero(mask) < MIN_PIXELS:
        return None
    low, high = np.percentile(masked_mean(image, mask)[mask], RANGE_PERCENTILES)
    grow = RANGE_WIDENING * (high - low)
    return IntensityRange(float(low - grow), float(high + grow))


def outside_fraction(image: np.ndarray | None, mask: np.ndarray, reference: IntensityRange | None) -> float | None:
    """The fraction of ``mask`` whose (masked-smoothed) intensity lies outside ``reference``."""
    return _fractions(image, mask, [reference])[0]


def _fractions(image: np.ndarray | None, mask: np.ndarray, references: list[IntensityRange | None]) -> list:
    """:func:`outside_fraction` for each reference, smoothing the slice once."""
    mask = np.asarray(mask, bool)
    if image is None or not mask.any() or all(r is None for r in references):
        return [None] * len(references)
    values = masked_mean(image, mask)[mask]
    return [None if r is None else float(np.mean((values < r.low) | (values > r.high))) for r in references]


def is_leak(fraction: float | None) -> bool:
    """Whether a slice with this :func:`outside_fraction` should be looked at."""
    return fraction is not None and fraction > LEAK_FRACTION


def check_slice(image: np.ndarray | None, mask: np.ndarray, references: list[IntensityRange | None]) -> tuple[float | None, str]:
    """(outside fraction, flag) of one slice's mask against the seed ranges of the fronts that
    reached it: the smaller fraction (where two fronts meet, a mask fitting either seed's tissue
    is no leak, as an organ's intensity drifts between seeds), and "leak" when :func:`is_leak`
    says so."""
    fractions = [f for f in _fractions(image, mask, references) if f is not None]
    best = min(fractions, default=None)
    return best, "leak" if is_leak(best) else ""
