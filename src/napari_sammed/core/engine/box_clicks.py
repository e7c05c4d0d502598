"""Clicks for a network trained with boxes only (LiteMedSAM).

A box-trained decoder answers a lone point with (almost) nothing (one interior click on the
sample CT/MR organs: docs/benchmarks.md). So a click here means "the object under this point", found with
the prompt the network knows:

1. boxes of several sizes centred on the click (one batched decoder call);
2. among the masks that contain the click, the one with the best predicted IoU;
3. one refinement with the box of that mask grown by 3 px (as LiteMedSAM's own 3D loop grows
   the previous slice's box).

Clicks then edit a base mask (the box's, the previous mask prompt's, or the first click's
object) in logit space, conservatively (see :func:`apply_clicks`). A click that already agrees
with the base changes nothing, so box + clicks never undoes what the box got right.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: Half sizes of the candidate boxes, in pixels of the 256 frame.
HALF_SIZES = (8, 16, 24, 32, 48, 64)
GROW = 3.0
MAX_CARVE = 2.0  # frame px
LEAK = 0.25  # a negative click's object covering less of the mask than this is another object


def _at(low_res: torch.Tensor, x: float, y: float, frame: int) -> torch.Tensor:
    """Logit(s) at frame point (x, y) of (B, 1, L, L) low-res logits -> (B,), interpolated as
    the bilinear upsampling to the slice does, so "inside" here is inside on screen."""
    grid = torch.tensor([[[[2 * x / frame - 1, 2 * y / frame - 1]]]], dtype=low_res.dtype, device=low_res.device)
    grid = grid.expand(len(low_res), 1, 1, 2)
    return F.grid_sample(low_res, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, 0, 0, 0]


def _box_of(mask: torch.Tensor, scale: float, grow: float) -> torch.Tensor | None:
    """XYXY frame box of a (L, L) boolean mask, grown by ``grow`` frame pixels; None when empty."""
    return grown_boxes(mask[None], scale, grow)[0] if bool(mask.any()) else None


def grown_boxes(masks: torch.Tensor, scale: float, grow: float) -> torch.Tensor:
    """(B, L, L) masks -> (B, 4) XYXY frame boxes (low-res pixel edges x ``scale``) grown by
    ``grow``; an empty mask keeps a dot at the origin."""
    rows, cols = masks.any(dim=2), masks.any(dim=1)
    index = torch.arange(masks.shape[-1], device=masks.device, dtype=torch.float32)
    big = float(masks.shape[-1])

    def first_last(hit):
        first = torch.where(hit, index, big).amin(dim=1)
        last = torch.where(hit, index, -1.0).amax(dim=1)
        return first, last

    r0, r1 = first_last(rows)
    c0, c1 = first_last(cols)
    empty = r1 < 0
    r0, c0 = torch.where(empty, 0.0, r0), torch.where(empty, 0.0, c0)
    r1, c1 = torch.where(empty, 0.0, r1), torch.where(empty, 0.0, c1)
    return torch.stack([c0 * scale - grow, r0 * scale - grow, (c1 + 1) * scale + grow, (r1 + 1) * scale + grow], 1)


def object_at(decode_boxes, x: float, y: float, frame: int, valid: tuple[int, int]):
    """The object under frame point (x, y): -> (low-res logits (1, 1, L, L), predicted IoU).

    ``decode_boxes(boxes (B, 4)) -> (low_res (B, 1, L, L), iou (B,))`` runs the network;
    ``valid`` is the (height, width) of the image inside the padded frame.
    """
    height, width = valid
    halves = torch.tensor(HALF_SIZES, dtype=torch.float32)
    boxes = torch.stack([(x - halves).clamp(0, width), (y - halves).clamp(0, height),
                         (x + halves).clamp(0, width), (y + halves).clamp(0, height)], dim=1)
    low, iou = decode_boxes(boxes)
    at_click = _at(low, x, y, frame)
    score = torch.where(at_click > 0, iou, iou - 10.0)  # masks holding the click first
    best = int(torch.argmax(score))
    low, iou = low[best : best + 1], iou[best : best + 1]
    box = _box_of(low[0, 0] > 0, frame / low.shape[-1], GROW)
    if box is not None:
        refined, refined_iou = decode_boxes(box[None])
        if _at(refined, x, y, frame)[0] > 0:
            return refined, refined_iou
    return low, iou


def grow_box(box: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """A box (4,) grown to hold frame point (x, y) with a ``GROW`` margin."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return torch.tensor([min(x0, x - GROW), min(y0, y - GROW), max(x1, x + GROW), max(y1, y + GROW)])


def _disc(base: torch.Tensor, x: float, y: float, frame: int, radius: float) -> torch.Tensor:
    """(1, 1, L, L) boolean disc of ``radius`` low-res px around frame point (x, y)."""
    side = base.shape[-1]
    row, col = (int(np.clip(v * side / frame, 0, side - 1)) for v in (y, x))
    rows, cols = np.ogrid[:side, :side]
    return torch.as_tensor((rows - row) ** 2 + (cols - col) ** 2 <= radius**2, device=base.device)[None, None]


def carve(base: torch.Tensor, x: float, y: float, frame: int) -> torch.Tensor:
    """Remove from ``base`` the disc around (x, y) that reaches the mask's nearest edge, at most
    ``MAX_CARVE`` px: a click deep inside a mask says "not here", not how far."""
    from scipy import ndimage as ndi

    mask = (base[0, 0] > 0).cpu().numpy()
    side = mask.shape[0]
    row, col = (int(np.clip(v * side / frame, 0, side - 1)) for v in (y, x))
    radius = min(max(float(ndi.distance_transform_edt(mask)[row, col]), 1.0), MAX_CARVE) + 0.5
    return torch.where(_disc(base, x, y, frame, radius), torch.clamp(base, max=-8.0), base)


def paint(base: torch.Tensor, x: float, y: float, frame: int) -> torch.Tensor:
    """Add the ``MAX_CARVE`` disc around (x, y) to ``base``: a positive click is always obeyed."""
    return torch.where(_disc(base, x, y, frame, MAX_CARVE + 0.5), torch.clamp(base, min=8.0), base)


def apply_clicks(box, base, base_iou, points, labels, decode_boxes, object_of, frame: int):
    """Clicks that make or correct a mask -> (low-res logits (1, 1, L, L) or None, iou).

    ``box`` (4,) frame XYXY or None; ``base`` the box's (or a previous) mask logits or None;
    ``points`` (K, 2) frame pixels with ``labels`` (K,) 1/0. Without a base, the first positive
    click's object becomes it (``object_of(x, y) -> (logits, iou)``). Then each click the mask
    disagrees with edits it; clicks it already agrees with change nothing.

    A positive click the mask misses grows the box to take it in (the prompt the network knows)
    and adds the new mask (and, if that still misses it, a small disc at the click). A negative
    click the mask covers removes the object under it when that is another object (it covers
    less than a quarter of the mask: a leak into a neighbour), otherwise only a small disc
    reaching the mask's edge (a rim too many).
    """
    if base is not None and not bool((base > 0).any()):
        base = None
    if base is None:
        positive = [i for i, label in enumerate(labels) if label == 1]
        if not positive:
            return None, None
        base, base_iou = object_of(*points[positive[0]])
    if box is None:
        box = _box_of(base[0, 0] > 0, frame / base.shape[-1], 0.0)
    for (x, y), label in zip(points, labels, strict=True):
        inside = bool(_at(base, x, y, frame)[0] > 0)
        if (label == 1) == inside:
            continue
        if label == 1:
            box = grow_box(box, x, y)
            base = torch.maximum(base, decode_boxes(box[None])[0])
            if not bool(_at(base, x, y, frame)[0] > 0):
                base = paint(base, x, y, frame)
            continue
        obj, _ = object_of(x, y)
        mask = base > 0
        shared = float(((obj > 0) & mask).sum()) / max(float(mask.sum()), 1.0)
        base = torch.minimum(base, -obj) if shared < LEAK else carve(base, x, y, frame)
    return base, base_iou
