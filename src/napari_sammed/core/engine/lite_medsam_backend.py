"""LiteMedSAM's backend: its encoder made fast for inference, its CPU decoder, clicks as boxes."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from ..model.loaded import LoadedModel
from . import box_clicks
from .backends import NetworkBackend, Prompt
from .slice_workers import SliceWorkers
from .token_decoder import TokenDecoder


class LiteMedSamBackend(NetworkBackend):
    """LiteMedSAM: TinyViT encoder at 256 px, box-trained, single-mask output as officially run.

    Boxes (and box + mask prompts) go to the network as they are. Clicks become boxes: each
    click stands for the object under it (:mod:`.box_clicks`), which it adds or removes.
    """

    multimask = False
    auto_masks = "region-boxes"
    stability_score_thresh = 0.8  # its logits are softer than SAM's: organ masks score .8-.93

    def __init__(self, loaded: LoadedModel, optimized: bool = True) -> None:
        super().__init__(loaded)
        if optimized:
            self.encoder, self.input_format = fast_encoder(self.network.image_encoder, self.device), torch.channels_last
        # On the CPU one slice at a time is faster than batches (smaller tensors, reused memory),
        # and two slices in flight, each on half the cores, beat one on all of them.
        on_cpu = optimized and self.device.type == "cpu"
        self.encoder_batch = 1 if on_cpu else None
        self.workers = SliceWorkers(2 if on_cpu else 1)
        self.token_decoder = TokenDecoder(self.network.prompt_encoder, self.network.mask_decoder) if optimized else None

    def decode_all(self, embedding, coords, labels, boxes=None, masks=None, multimask=True):
        if self.token_decoder is None:
            return super().decode_all(embedding, coords, labels, boxes, masks, multimask)
        points = (coords, labels) if coords is not None else None
        sparse, dense = self.network.prompt_encoder(points=points, boxes=boxes, masks=masks)
        return self.token_decoder(embedding, sparse, None if masks is None else dense, multimask)

    def embed(self, rgb: np.ndarray) -> torch.Tensor:
        step = self.encoder_batch or len(rgb)
        chunks = [rgb[start : start + step] for start in range(0, len(rgb), step)]
        return torch.cat(self.workers.map(self.encode, chunks)).contiguous()

    def decode(self, embedding, tf, group, multimask):
        if group[0].points is None:
            return super().decode(embedding, tf, group, multimask)
        lows, ious = zip(*(self._decode_clicks(embedding, tf, p) for p in group), strict=True)
        low_res, iou = torch.cat(lows), torch.cat(ious)
        frame = F.interpolate(low_res, (self.frame, self.frame), mode="bilinear", align_corners=False)
        return frame, low_res, iou

    def _decode_clicks(self, embedding, tf, prompt: Prompt):
        def decode_boxes(boxes: torch.Tensor):
            return self.decode_best(embedding, None, None, boxes.to(self.device), None, multimask=False)

        base = base_iou = box = None
        if prompt.box is not None:
            masks = None
            if prompt.mask_input is not None:
                shape = (1, 1, self.low_res, self.low_res)
                masks = torch.as_tensor(np.asarray(prompt.mask_input, np.float32).reshape(shape), device=self.device)
            box = torch.as_tensor(tf.boxes(prompt.box), dtype=torch.float32, device=self.device)
            base, base_iou = self.decode_best(embedding, None, None, box, masks, multimask=False)
        elif prompt.mask_input is not None:  # a previous result, refined by the clicks
            base = torch.as_tensor(np.asarray(prompt.mask_input, np.float32).reshape(1, 1, self.low_res, self.low_res),
                                   device=self.device)
            base_iou = torch.ones(1, device=self.device)
        frame_xy = tf.coords(prompt.points)

        def object_of(x: float, y: float):
            return box_clicks.object_at(decode_boxes, x, y, self.frame, tf.inner)

        low, iou = box_clicks.apply_clicks(None if box is None else box[0].cpu(), base, base_iou, frame_xy,
                                           prompt.point_labels, decode_boxes, object_of, self.frame)
        if low is None:  # only negative clicks: nothing is selected
            low = torch.full((1, 1, self.low_res, self.low_res), -8.0, device=self.device)
            iou = torch.zeros(1, device=self.device)
        return low, iou

    def protocol_mask_prompt(self, low_res_logits: np.ndarray) -> np.ndarray:
        return np.asarray(low_res_logits, np.float32)  # clicks edit the previous logits themselves

    def propagation_recipe(self, slice_shape: tuple[int, int]) -> dict:
        """The previous mask's box grown by 3 px at the 256 frame, as LiteMedSAM's own 3D loop,
        and no mask prompt (trained without one, it propagates better without on CT and MR:
        docs/benchmarks.md)."""
        return {"box_margin": 0.0, "min_margin": 3.0 * max(slice_shape) / self.frame, "use_mask_prompt": False}


def fast_encoder(encoder: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """An inference copy of a TinyViT: BatchNorm folded, biases gathered, channels-last, and on
    the CPU its full-resolution conv blocks run in row bands. The model itself stays untouched
    (its state dict keeps the checkpoint's keys). Same outputs within float rounding (tested)."""
    dtype = next(encoder.parameters()).dtype
    fast = copy.deepcopy(encoder).float()
    fast.optimize_for_inference(band_rows=16 if device.type == "cpu" else None)
    return fast.to(dtype=dtype, memory_format=torch.channels_last)
