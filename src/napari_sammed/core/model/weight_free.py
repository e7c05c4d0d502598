"""The weight-free segmenter: prompt-driven, by intensity, behind the SAM interface.

It is *not* a neural network and never pretends to be one. It works in the same 256x256 frame
and returns the same outputs (logits, a quality score, 64x64 low-res logits) as SAM-Med2D, so
the engine, propagation, SAMAug plumbing and export run end to end on a machine without weights.

Method: estimate the object's intensity (robust median and spread) from a seed region — the
previous mask, the positive clicks, or the centre of the box —, keep the smoothed pixels within
tolerance inside the box, keep the connected parts touching the seed, then close and fill holes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy import ndimage as ndi

KIND = "weight-free"
LABEL = "weight-free segmenter (intensity, no neural network)"
FRAME = 256
LOW_RES = 64


@dataclass(frozen=True)
class WeightFreeSpec:
    """The weight-free family's one spec: SAM-Med2D's frame and pre-processing, no network."""

    kind: str = KIND
    img_size: int = FRAME
    low_res_size: int = LOW_RES
    preprocess: str = "sam-med2d"
    label = LABEL

    def describe(self) -> dict:
        return asdict(self)


def build_weight_free(spec: WeightFreeSpec, device: str | torch.device = "cpu") -> WeightFreeModel:
    """The segmenter at its default settings (it holds no weights, so ``device`` is moot)."""
    return WeightFreeModel()


class WeightFreeModel:
    """The segmenter: prompts in its 256 x 256 frame -> logits and a quality score."""

    def __init__(self, tolerance: float = 2.0, min_tolerance: float = 4.0, smoothing: float = 1.0,
                 reach: int | None = None):
        self.reach = reach
        self.tolerance = tolerance
        self.min_tolerance = min_tolerance
        self.smoothing = smoothing

    def __repr__(self) -> str:
        return f"WeightFreeModel({LABEL})"

    def describe(self) -> dict:
        return {"kind": KIND, "label": LABEL, "checkpoint_sha256": None,
                "tolerance": self.tolerance, "min_tolerance": self.min_tolerance, "reach": self.reach}

    def segment(
        self,
        image: np.ndarray,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        box: np.ndarray | None,
        mask_input: np.ndarray | None,
    ) -> tuple[np.ndarray, float]:
        """Segment one 256x256 float image (0..255). Coordinates are x, y in that frame.

        Returns (logits (256,256) float32, score in [0, 1]).
        """
        smooth = ndi.gaussian_filter(image.astype(np.float32), self.smoothing)
        h, w = smooth.shape
        positives, negatives = _split_points(points, labels)
        region = np.ones((h, w), bool) if box is None else _box_mask(box, (h, w))
        previous = _previous_mask(mask_input, (h, w))
        # Clicks say more than a previous mask that may be wrong: refine from the clicks.
        seed = _seed(None if len(positives) else previous, positives, (h, w)) & region
        if len(positives):
            # The first click (with the previous mask when a box bounds it) sets the tissue;
            # later clicks, often on a rim where tissues mix, only add their own pixel's value.
            first = _seed(previous if box is not None else None, positives[:1], (h, w)) & region
            models = [_robust_stats(smooth[first])]
            models += [_robust_stats(smooth[_seed(None, [p], (h, w), radius=1)]) for p in positives[1:]]
        elif seed.any():
            models = [_robust_stats(smooth[seed])]
        elif box is not None:
            # A box alone: the object is the dominant tissue of its tight box (SAM's premise),
            # so take the intensity mode inside the box rather than its centre, which misses
            # curved organs such as the liver.
            models = [_dominant_mode(smooth[region])]
        else:
            return np.full((h, w), -8.0, np.float32), 0.0
        models = [(c, max(self.tolerance * spread, self.min_tolerance)) for c, spread in models]
        # Later clicks may not widen the first one's range.
        models = [(c, min(t, models[0][1])) for c, t in models]
        centre, tol = models[0]
        candidate = np.zeros((h, w), bool)
        for c, t in models:
            candidate |= np.abs(smooth - c) <= t
        candidate &= region
        candidate = ndi.binary_opening(candidate, iterations=1)
        if self.reach and previous is not None and previous.any():
            # A mask prompt says where the object was a moment ago (the previous slice): it
            # moves by a few pixels, it does not jump into the neighbouring organ.
            candidate &= ndi.binary_dilation(previous, iterations=self.reach)
        if len(negatives) and len(positives):
            # Split between the clicks: pixels nearer a negative than any positive click go.
            candidate &= _nearest_click_is_positive(positives, negatives, (h, w))
        for x, y in negatives if not len(positives) else ():  # no positives: drop the part it hits
            xi, yi = int(np.clip(x, 0, w - 1)), int(np.clip(y, 0, h - 1))
            if candidate[yi, xi]:
                lab, _ = ndi.label(candidate)
                candidate &= lab != lab[yi, xi]
        lab, n = ndi.label(candidate)
        if n == 0:
            return np.full((h, w), -8.0, np.float32), 0.0
        if seed.any():
            keep = np.unique(lab[seed & candidate])
            mask = np.isin(lab, keep[keep > 0])
        else:
            mask = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
        mask = ndi.binary_closing(mask, iterations=2) & region
        mask = ndi.binary_fill_holes(mask)
        if not mask.any():
            return np.full((h, w), -8.0, np.float32), 0.0
        # Soft logits: positive inside, negative outside, sloped by the distance to the edge so
        # that bilinear resizing (as SAM's logits get) keeps the boundary where it is.
        inside = ndi.distance_transform_edt(mask)
        outside = ndi.distance_transform_edt(~mask)
        logits = np.clip(inside - outside + 0.5 * (mask.astype(np.float32) * 2 - 1), -8, 8)
        fit = np.exp(-0.5 * ((smooth[mask] - centre) / tol) ** 2)
        return logits.astype(np.float32), float(np.clip(fit.mean(), 0.0, 1.0))


def _split_points(points, labels):
    if points is None or len(points) == 0:
        return np.zeros((0, 2)), np.zeros((0, 2))
    points = np.asarray(points, float).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    return points[labels == 1], points[labels == 0]


def _box_mask(box, shape) -> np.ndarray:
    h, w = shape
    x0, y0, x1, y1 = np.asarray(box, float).reshape(4)
    out = np.zeros(shape, bool)
    r0, r1 = int(np.clip(np.floor(y0), 0, h)), int(np.clip(np.ceil(y1), 0, h))
    c0, c1 = int(np.clip(np.floor(x0), 0, w)), int(np.clip(np.ceil(x1), 0, w))
    out[r0:r1, c0:c1] = True
    return out


def _robust_stats(values: np.ndarray) -> tuple[float, float]:
    centre = float(np.median(values))
    return centre, 1.4826 * float(np.median(np.abs(values - centre)))


def _dominant_mode(values: np.ndarray) -> tuple[float, float]:
    hist = np.bincount(np.clip(values, 0, 255).astype(int), minlength=256).astype(float)
    peak = float(np.argmax(ndi.gaussian_filter1d(hist, 3.0)))
    near = values[np.abs(values - peak) <= 20]
    return _robust_stats(near) if near.size else (peak, 0.0)


def _nearest_click_is_positive(positives, negatives, shape) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]

    def nearest(points):
        return np.min([(xx - x) ** 2 + (yy - y) ** 2 for x, y in points], axis=0)

    return nearest(positives) <= nearest(negatives)


def _previous_mask(mask_input, shape) -> np.ndarray | None:
    if mask_input is None:
        return None
    low = np.asarray(mask_input, np.float32).reshape(mask_input.shape[-2:])
    up = torch.nn.functional.interpolate(torch.from_numpy(low)[None, None], shape, mode="bilinear", align_corners=False)
    return up[0, 0].numpy() > 0


def _seed(previous, positives, shape, radius: float = 3.0) -> np.ndarray:
    h, w = shape
    seed = np.zeros(shape, bool)
    if previous is not None:
        eroded = ndi.binary_erosion(previous, iterations=3)
        seed |= eroded if eroded.sum() >= 16 else previous
    yy, xx = np.mgrid[0:h, 0:w]
    for x, y in positives:
        seed |= (xx - x) ** 2 + (yy - y) ** 2 <= radius**2
    return seed
