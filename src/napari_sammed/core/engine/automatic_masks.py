"""Automatic masks on one embedded slice: a point grid decoded in large batches.

Post-processing follows SAM's automatic mask generator: keep masks whose predicted IoU and
stability score (IoU of the masks thresholded at logit +1 and -1) pass thresholds, then box NMS.
Work happens in the model's square frame (256 px for SAM-Med2D); kept masks are resized to the
slice. The weight-free engine gets a clearly labelled over-segmentation instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..model.sam_import import amg as _amg
from ..settings import AmgSettings
from .box_clicks import grown_boxes
from .slice_engine import SliceEngine


@dataclass
class AutoMasks:
    """The automatic masks of one slice, with their scores and the method that found them."""

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
    """Automatic masks for one slice, by the strategy that fits the engine's model.

    ``image`` (the uint8 slice) is needed by the strategies that start from the image itself
    (region proposals, the weight-free engine's regions).
    """
    strategy = STRATEGIES[engine.auto_masks]
    if strategy is not point_grid_masks and image is None:
        raise ValueError(f"{engine.label} needs the slice image for automatic masks")
    if settings.stability_score_thresh is None:
        settings = replace(settings, stability_score_thresh=engine.stability_score_thresh)
    return strategy(engine, embedding, image_size, settings, image)


def point_grid_masks(engine, embedding, image_size, settings, image=None) -> AutoMasks:
    """SAM's recipe: a grid of single positive points, three candidates each, filtered and NMS'd."""
    emb = engine.as_embedding(embedding)
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
    return _finish(engine, kept_logits, kept_ious, kept_stability, image_size, settings, f"{engine.kind} point grid")


def _finish(engine, logits: list, ious: list, stability: list, image_size, settings, method: str) -> AutoMasks:
    """Batches of frame logits (N, S, S) joined, NMS, the survivors resized to the slice, small ones dropped."""
    if logits:
        logits, ious, stability = torch.cat(logits), torch.cat(ious), torch.cat(stability)
    else:
        logits, ious, stability = torch.zeros(0, engine.frame, engine.frame), torch.zeros(0), torch.zeros(0)
    kept = nms_masks(logits, ious, settings.box_nms_thresh)
    stability, kept_ious = stability[kept], ious[kept]
    tf = engine.transform(image_size)
    masks = tf.logits(logits[kept][:, None].to(engine.device))[:, 0].cpu().numpy() > 0 if len(kept) else \
        np.zeros((0, *image_size), bool)
    masks, stability, kept_ious = _drop_small(masks, stability.numpy(), kept_ious.numpy(), settings)
    return AutoMasks(masks, stability.astype(np.float32), kept_ious.astype(np.float32), method)


def region_box_masks(engine, embedding, image_size, settings: AmgSettings, image: np.ndarray) -> AutoMasks:
    """For box-trained models: boxes of over-segmentation regions, decoded and refined once.

    A box-only network (LiteMedSAM) answers a lone point with nothing and a blind box grid with
    fragments; the box of a homogeneous region is the prompt it was trained on. Regions come
    from Felzenszwalb and its merged regions on the 256 frame (so their number does not grow
    with the slice size, see ``_region_boxes``); each mask is decoded again from its own box
    grown by 3 frame px, which grows a fragment's mask towards the whole organ.
    """
    emb = engine.as_embedding(embedding)
    tf = engine.transform(image_size)
    frame = engine.frame
    boxes = torch.as_tensor(_region_boxes(image, tf), dtype=torch.float32, device=engine.device)
    kept_logits, kept_ious, kept_stability = [], [], []
    for start in range(0, len(boxes), settings.points_per_batch):
        chunk = boxes[start : start + settings.points_per_batch]
        low, _ = engine.decode_all(emb, None, None, chunk, multimask=False)
        grown = grown_boxes(low[:, 0] > 0, frame / low.shape[-1], 3.0)
        low, iou = engine.decode_all(emb, None, None, grown, multimask=False)
        up = F.interpolate(low, (frame, frame), mode="bilinear", align_corners=False)[:, 0]
        idx, stability = filter_masks(up, iou[:, 0], settings)
        kept_logits.append(up[idx].cpu())
        kept_ious.append(iou[idx, 0].cpu())
        kept_stability.append(stability.cpu())
    return _finish(engine, kept_logits, kept_ious, kept_stability, image_size, settings, f"{engine.kind} region boxes")


REGION_SCALES = (200, 800, 3000)  # Felzenszwalb scales on the 256 frame
MERGE_THRESHOLDS = (10, 20)  # mean grey-level steps under which neighbouring regions merge


def _region_boxes(image: np.ndarray, tf) -> np.ndarray:
    """XYXY frame boxes of region proposals on the slice at frame size.

    Felzenszwalb regions at three scales, and the same regions merged with their neighbours
    when their mean grey levels differ by less than 10 or 20 (a region adjacency graph cut):
    a large homogeneous organ (the liver) comes out of Felzenszwalb in fragments that only the
    merge joins. Boxes must stay under 80 % of the frame side; repeated boxes are decoded once.
    """
    from skimage.graph import cut_threshold, rag_mean_color
    from skimage.segmentation import felzenszwalb
    from skimage.transform import resize

    grey = image.mean(-1) if image.ndim == 3 else image.astype(np.float32)
    small = resize(grey, tf.inner, order=1, preserve_range=True, anti_aliasing=True)
    min_size = max(16, small.size // 500)
    boxes = []
    for scale in REGION_SCALES:
        labels = felzenszwalb(small, scale=scale, sigma=0.8, min_size=min_size)
        boxes += _label_boxes(labels, tf.inner)
        graph = rag_mean_color(small[..., None], labels)
        for threshold in MERGE_THRESHOLDS:
            boxes += _label_boxes(cut_threshold(labels, graph, threshold), tf.inner)
    return np.unique(np.asarray(boxes, np.float64).reshape(-1, 4), axis=0)


def _label_boxes(labels: np.ndarray, inner: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """XYXY boxes of the regions of ``labels`` narrower and lower than 80 % of ``inner``."""
    from skimage.measure import regionprops

    boxes = []
    for region in regionprops(labels + 1):
        r0, c0, r1, c1 = region.bbox
        if (c1 - c0) < 0.8 * inner[1] and (r1 - r0) < 0.8 * inner[0]:
            boxes.append((c0, r0, c1, r1))
    return boxes


def _drop_small(masks, stability, ious, settings):
    if settings.min_mask_region_area <= 0 or len(masks) == 0:
        return masks, stability, ious
    big = masks.reshape(len(masks), -1).sum(1) >= settings.min_mask_region_area
    return masks[big], stability[big], ious[big]


def over_segmentation(image: np.ndarray) -> np.ndarray:
    """Felzenszwalb regions of a uint8 slice (grey or RGB) -> (H, W) int labels."""
    from skimage.segmentation import felzenszwalb

    grey = image.mean(-1) if image.ndim == 3 else image.astype(np.float32)
    return felzenszwalb(grey, scale=200, sigma=0.8, min_size=max(20, grey.size // 2000))


def weight_free_regions(engine, embedding, image_size, settings: AmgSettings, image: np.ndarray) -> AutoMasks:
    """Weight-free stand-in: Felzenszwalb over-segmentation; score = region homogeneity in [0, 1]."""
    grey = image.mean(-1) if image.ndim == 3 else image.astype(np.float32)
    labels = over_segmentation(image)
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
    return AutoMasks(masks_arr, stability, stability.copy(), "weight-free over-segmentation (felzenszwalb)")


STRATEGIES = {"point-grid": point_grid_masks, "region-boxes": region_box_masks, "regions": weight_free_regions}
