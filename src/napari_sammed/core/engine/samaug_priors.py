"""SAMAug: SAM-derived prior maps appended to the image for downstream training.

- segmentation prior S(p) = sum of the stability scores of the kept masks containing p;
- boundary prior B(p) = 1 on ``find_boundaries(mask, mode="thick")`` of any kept mask, else 0;
- augmented image: the image in [0, 1] on three channels with S added to channel 1 and B to 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.segmentation import find_boundaries

from ..errors import InputError
from ..io.windowing import Window, apply_window, percentile_window
from ..settings import AmgSettings
from .automatic_masks import AutoMasks, automatic_masks


def prior_maps(masks: np.ndarray, stability_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, H, W) bool masks and (M,) scores -> segmentation prior, boundary prior (H, W) float32."""
    masks = np.asarray(masks, dtype=bool)
    scores = np.asarray(stability_scores, dtype=np.float32).reshape(-1)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (M, H, W), got shape {masks.shape}")
    if len(scores) != len(masks):
        raise ValueError(f"{len(masks)} masks but {len(scores)} stability scores")
    seg = np.zeros(masks.shape[1:], np.float32)
    bnd = np.zeros(masks.shape[1:], bool)
    for mask, score in zip(masks, scores, strict=True):
        seg[mask] += score
        bnd |= find_boundaries(mask, mode="thick")
    return seg, bnd.astype(np.float32)


def image_to_unit(image: np.ndarray, window: Window | None = None) -> np.ndarray:
    """Image as float32 in [0, 1]: uint8/uint16 by their dtype range, others by ``window``
    (default: the 0.5-99.5 percentile window)."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if image.dtype.kind not in "iuf":
        raise InputError(None, f"unsupported image dtype {image.dtype}")
    window = window or percentile_window(image)
    if image.dtype.kind == "f":
        return np.clip((image.astype(np.float32) - window.low) / (window.high - window.low), 0, 1)
    return apply_window(image, window).astype(np.float32) / 255.0


def augment_image(image: np.ndarray, seg: np.ndarray, bnd: np.ndarray, window: Window | None = None) -> np.ndarray:
    """(H, W) or (H, W, 3) image -> (H, W, 3) float32: [I, I + S, I + B] (grey replicated)."""
    unit = image_to_unit(image, window)
    if unit.ndim == 2:
        unit = np.repeat(unit[..., None], 3, axis=-1)
    if unit.shape[:2] != seg.shape or seg.shape != bnd.shape:
        raise ValueError(f"image {unit.shape[:2]}, seg prior {seg.shape} and boundary prior {bnd.shape} differ")
    out = unit.astype(np.float32, copy=True)
    out[..., 1] += seg
    out[..., 2] += bnd
    return out


def augmented_uint8(augmented: np.ndarray) -> np.ndarray:
    """The augmented image as 8-bit RGB (clipped to [0, 1]): its PNGs and SAM-Med2D images."""
    return (np.clip(augmented, 0, 1) * 255).astype(np.uint8)


@dataclass
class SamAugResult:
    """SAMAug's three maps for one slice and the automatic masks they come from."""

    seg_prior: np.ndarray
    boundary_prior: np.ndarray
    augmented: np.ndarray
    masks: AutoMasks


def samaug_slice(engine, image: np.ndarray, window: Window | None, settings: AmgSettings = AmgSettings(),
                 embedding=None) -> SamAugResult:
    """All three SAMAug maps for one slice (any dtype; ``window`` makes it 8-bit for the model)."""
    image = np.asarray(image)
    rgb_input = image.ndim == 3
    model_input = image if image.dtype == np.uint8 and (rgb_input or window is None) else apply_window(image, window)
    if embedding is None:
        embedding = engine.embed(model_input if not rgb_input else model_input[None])[0]
    auto = automatic_masks(engine, embedding, image.shape[:2], settings, image=model_input)
    seg, bnd = prior_maps(auto.masks, auto.stability_scores)
    return SamAugResult(seg, bnd, augment_image(image, seg, bnd, window), auto)
