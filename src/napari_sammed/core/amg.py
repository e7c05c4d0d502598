"""Automatic masks on one embedded slice: a point grid decoded in large batches.

Post-processing follows SAM's automatic mask generator: keep masks whose predicted IoU and
stability score (IoU of the masks thresholded at logit +1 and -1) pass thresholds, then box NMS.
Work happens in the model's square frame (256 px for SAM-Med2D); kept masks are resized to the
slice. The weight-free engine gets a clearly labelled classical over-segmentation instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .engine import SliceEngine
from .sam_import import amg as _amg


@dataclass(frozen=True)
class AmgSettings:
    points_per_side: int = 32
    pred_iou_thresh: float = 0.5  # SAMAug's setting (SAM's default is 0.88)
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.5
    min_mask_region_area: int = 0  # in slice pixels; 0 keeps all
    points_per_batch: int = 256

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class AutoMasks:
    masks: np.ndarray  # (M, H, W) bool
    stability_scores: np.ndarray  # (M,) float32
    predicted_ious: np.ndarray  # (M,) float32
    method: str


def box_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS (torchvision.ops.nms semantics) in plain torch; returns kept indices by score."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    boxes = boxes.float()
    area = (boxes[:, 2] - boxes[:, 0]).clamp_min(0) * (boxes[:, 3] - boxes[:, 1]).clamp_min(0)
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp_min(1e-9)
    order = torch.argsort(scores, descending=True)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def filter_masks(
    logits: torch.Tensor, ious: torch.Tensor, settings: AmgSettings
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's per-mask filters on candidate logits (N, S, S) -> kept indices, their stability."""
    keep = ious >= settings.pred_iou_thresh
    stability = torch.zeros_like(ious)
    if keep.any():
        stability[keep] = _amg().calculate_stability_score(logits[keep], 0.0, settings.stability_score_offset)
    keep &= stability >= settings.stability_score_thresh
    keep &= (logits > 0).flatten(1).any(1)
    idx = torch.nonzero(keep).flatten()
    return idx, stability[idx]


def nms_masks(logits: torch.Tensor, ious: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices of masks surviving box NMS, ranked by predicted IoU (as SAM does)."""
    if len(logits) == 0:
        return torch.zeros(0, dtype=torch.long)
    boxes = _amg().batched_mask_to_box(logits > 0)
    return box_nms(boxes, ious, threshold)


@torch.inference_mode()
def automatic_masks(
    engine: SliceEngine,
    embedding: torch.Tensor,
    image_size: tuple[int, int],
    settings: AmgSettings = AmgSettings(),
    image: np.ndarray | None = None,
) -> AutoMasks:
    """Automatic masks for one slice. ``image`` (uint8) is needed only by the weight-free engine."""
    if engine.is_classical:
        if image is None:
            raise ValueError("the weight-free engine needs the slice image for automatic masks")
        return classical_regions(image, settings)
    emb = engine._as_embedding(embedding)
    frame = engine.frame
    grid = _amg().build_point_grid(settings.points_per_side) * frame  # (P, 2) x, y in the frame
    kept_logits, kept_ious, kept_stability = [], [], []
    for start in range(0, len(grid), settings.points_per_batch):
        pts = torch.tensor(grid[start : start + settings.points_per_batch], dtype=torch.float32, device=engine.device)
        labels = torch.ones(len(pts), 1, dtype=torch.int64, device=engine.device)
        low, iou = engine.decode_all(emb, pts[:, None], labels, multimask=True)
        low, iou = low.flatten(0, 1), iou.flatten()
        # The IoU filter is cheap: apply it before upsampling to the frame.
        passing = iou >= settings.pred_iou_thresh
        if not passing.any():
            continue
        up = F.interpolate(low[passing][:, None], (frame, frame), mode="bilinear", align_corners=False)[:, 0]
        idx, stability = filter_masks(up, iou[passing], settings)
        kept_logits.append(up[idx].cpu())
        kept_ious.append(iou[passing][idx].cpu())
        kept_stability.append(stability.cpu())
    if kept_logits:
        logits, ious, stability = torch.cat(kept_logits), torch.cat(kept_ious), torch.cat(kept_stability)
    else:
        logits, ious, stability = torch.zeros(0, frame, frame), torch.zeros(0), torch.zeros(0)
    kept = nms_masks(logits, ious, settings.box_nms_thresh)
    stability, kept_ious = stability[kept], ious[kept]
    tf = engine.transform(image_size)
    masks = tf.logits(logits[kept][:, None].to(engine.device))[:, 0].cpu().numpy() > 0 if len(kept) else \
        np.zeros((0, *image_size), bool)
    masks, stability, kept_ious = _drop_small(masks, stability.numpy(), kept_ious.numpy(), settings)
    return AutoMasks(masks, stability.astype(np.float32), kept_ious.astype(np.float32), f"{engine.kind} point grid")


def _drop_small(masks, stability, ious, settings):
    if settings.min_mask_region_area <= 0 or len(masks) == 0:
        return masks, stability, ious
    big = masks.reshape(len(masks), -1).sum(1) >= settings.min_mask_region_area
    return masks[big], stability[big], ious[big]


def classical_regions(image: np.ndarray, settings: AmgSettings = AmgSettings()) -> AutoMasks:
    """Weight-free stand-in: Felzenszwalb over-segmentation; score = region homogeneity in [0, 1]."""
    from skimage.segmentation import felzenszwalb

    grey = image.mean(-1) if image.ndim == 3 else image.astype(np.float32)
    labels = felzenszwalb(grey, scale=200, sigma=0.8, min_size=max(20, grey.size // 2000))
    masks, scores = [], []
    for value in np.unique(labels):
        region = labels == value
        if region.sum() < max(settings.min_mask_region_area, 1):
            continue
        spread = float(grey[region].std())
        masks.append(region)
        scores.append(float(np.exp(-spread / 32.0)))
    stability = np.asarray(scores, np.float32)
    masks_arr = np.stack(masks) if masks else np.zeros((0, *grey.shape), bool)
    return AutoMasks(masks_arr, stability, stability.copy(), "weight-free classical over-segmentation (felzenszwalb)")
