"""One small interface per model family; ``SliceEngine`` and everything above it use only this.

A backend embeds a batch of uint8 RGB slices and decodes groups of same-shape prompts against
one embedding, in its model's square frame. Three families:

- :class:`SamVitBackend`: SAM-Med2D, Meta SAM vit_b/l/h and MedSAM (ViT encoders).
- :class:`LiteMedSamBackend`: LiteMedSAM (TinyViT encoder, box-trained, 64x64 embeddings).
- :class:`ClassicalBackend`: the weight-free intensity segmenter (no neural network).

Callers never ask which one they hold: differences are data (frame, low-res size, embedding
shape, which automatic-mask strategy fits) or overridden methods.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..model.classical import ClassicalModel
from . import box_clicks
from .frame import FrameTransform, nearest_indices
from .slice_workers import SliceWorkers
from .token_decoder import TokenDecoder


@dataclass
class Prompt:
    """Prompts for one object on one slice; coordinates are (x, y) slice pixels, boxes XYXY."""

    points: np.ndarray | None = None  # (K, 2)
    point_labels: np.ndarray | None = None  # (K,) 1 = positive, 0 = negative
    box: np.ndarray | None = None  # (4,)
    mask_input: np.ndarray | None = None  # (1, L, L) low-res logits from a previous prediction

    def __post_init__(self) -> None:
        if self.points is not None and len(self.points):
            self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
            if self.point_labels is None:
                raise ValueError("point_labels must be given with points")
            self.point_labels = np.asarray(self.point_labels, dtype=np.int64).reshape(-1)
            if len(self.point_labels) != len(self.points):
                raise ValueError(f"{len(self.points)} points but {len(self.point_labels)} labels")
        else:
            self.points, self.point_labels = None, None
        if self.box is not None:
            self.box = np.asarray(self.box, dtype=np.float64).reshape(4)
            if self.box[2] <= self.box[0] or self.box[3] <= self.box[1]:
                raise ValueError(f"box must be x0 < x1, y0 < y1; got {self.box.tolist()}")
        if self.points is None and self.box is None and self.mask_input is None:
            raise ValueError("a prompt needs points, a box or a mask")

    @property
    def signature(self) -> tuple[int, bool, bool]:
        """Prompts with equal signatures can share one decoder call."""
        return (0 if self.points is None else len(self.points), self.box is not None, self.mask_input is not None)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, float32."""
    return (1.0 / (1.0 + np.exp(-np.asarray(logits, np.float32)))).astype(np.float32)


class Backend:
    """What a model family must provide. Subclasses set the attributes in ``__init__``.

    ``frame``: side of the square model input (px); ``low_res``: side of the low-res logits;
    ``embedding_shape``: (C, G, G) of one slice's embedding; ``preprocess``: the
    :class:`FrameTransform` mode; ``multimask``: the family's own choice for a single prompt;
    ``auto_masks``: the automatic-mask strategy that fits it (see ``amg.STRATEGIES``).
    """

    kind: str
    label: str
    frame: int
    low_res: int
    embedding_shape: tuple[int, int, int]
    preprocess: str
    multimask: bool = True
    auto_masks: str = "point-grid"
    stability_score_thresh: float = 0.95  # SAMAug's automatic-mask filter
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32

    def transform(self, image_size: tuple[int, int]) -> FrameTransform:
        """The geometry between a slice of ``image_size`` (H, W) and this model's frame."""
        return FrameTransform(self.preprocess, self.frame, image_size)

    def embed(self, rgb: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, *embedding_shape) float32 on ``device``."""
        raise NotImplementedError

    def decode(
        self, embedding: torch.Tensor, tf: FrameTransform, group: Sequence[Prompt], multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Same-shape prompts on one embedding (1, C, G, G) -> frame logits (B, 1, S, S),
        low-res logits (B, 1, L, L) and predicted quality (B,)."""
        raise NotImplementedError

    def mask_prompt(self, low_res_logits: np.ndarray) -> np.ndarray:
        """A previous low-res output, as this model takes it back as ``mask_input``."""
        return np.asarray(low_res_logits, np.float32)

    def protocol_mask_prompt(self, low_res_logits: np.ndarray) -> np.ndarray:
        """What SAM-Med2D's test protocol feeds back: sigmoid(previous logits) for every network."""
        return sigmoid(low_res_logits)

    def describe(self) -> dict:
        """Provenance: what produced a result."""
        raise NotImplementedError

    def propagation_recipe(self, slice_shape: tuple[int, int]) -> dict:
        """How propagation prompts the next slice from the previous mask, measured per family:
        box grown by 10 % (>= 2 px) plus the previous logits as mask prompt."""
        return {"box_margin": 0.1, "min_margin": 2.0, "use_mask_prompt": True}


class NetworkBackend(Backend):
    """A ``segment_anything``-style network: ``image_encoder``, ``prompt_encoder``, ``mask_decoder``."""

    def __init__(self, model) -> None:
        self.model = model
        self.spec = model.spec
        param = next(model.image_encoder.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.kind, self.preprocess = self.spec.kind, self.spec.preprocess
        self.frame, self.low_res = self.spec.img_size, self.spec.low_res_size
        self.embedding_shape = (256, self.spec.grid, self.spec.grid)
        self.encoder, self.input_format = model.image_encoder, torch.contiguous_format

    def embed(self, rgb: np.ndarray) -> torch.Tensor:
        return self.encode(rgb)

    def encode(self, rgb: np.ndarray) -> torch.Tensor:
        """Preprocess and encode (N, H, W, 3) uint8 slices in one encoder call. Enters inference
        mode and autocast itself: both are per thread, and it may run on a worker thread."""
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype,
                                                    enabled=self.dtype != torch.float32):
            batch = torch.tensor(rgb, device=self.device)  # a copy: slices may be read-only views
            x = self.transform(rgb.shape[1:3]).images(batch).to(self.dtype)
            return self.encoder(x.contiguous(memory_format=self.input_format)).float()

    def decode(self, embedding, tf, group, multimask):
        coords = labels = boxes = masks = None
        as_tensor = torch.as_tensor
        if group[0].points is not None:
            coords = as_tensor(np.stack([tf.coords(p.points) for p in group]), dtype=torch.float32, device=self.device)
            labels = as_tensor(np.stack([p.point_labels for p in group]), dtype=torch.int64, device=self.device)
        if group[0].box is not None:
            boxes = as_tensor(np.concatenate([tf.boxes(p.box) for p in group]), dtype=torch.float32, device=self.device)
        if group[0].mask_input is not None:
            shape = (1, self.low_res, self.low_res)
            masks = as_tensor(np.stack([np.asarray(p.mask_input, np.float32).reshape(shape) for p in group]),
                              device=self.device)
        low_res, iou = self.decode_best(embedding, coords, labels, boxes, masks, multimask)
        frame = F.interpolate(low_res, (self.frame, self.frame), mode="bilinear", align_corners=False)
        return frame, low_res, iou

    def decode_best(self, embedding, coords, labels, boxes=None, masks=None, multimask=True):
        """Raw decoder call in the model frame: B prompts against one embedding (1, C, G, G).

        coords (B, K, 2) x, y in the frame; labels (B, K); boxes (B, 4); masks (B, 1, L, L).
        Returns the best (by predicted IoU) low-res logits (B, 1, L, L) and its IoU (B,); with
        ``multimask=False`` the single-mask output.
        """
        low_res, iou = self.decode_all(embedding, coords, labels, boxes, masks, multimask)
        if low_res.shape[1] > 1:
            best = iou.argmax(dim=1)
            rows = torch.arange(len(best), device=best.device)
            return low_res[rows, best][:, None], iou[rows, best]
        return low_res, iou[:, 0]

    def decode_all(self, embedding, coords, labels, boxes=None, masks=None, multimask=True):
        """Every decoder output: (B, M, L, L) low-res logits and (B, M) predicted IoUs."""
        points = (coords, labels) if coords is not None else None
        sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=masks)
        return self.model.mask_decoder(
            image_embeddings=embedding,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "label": self.label,
            "checkpoint_sha256": getattr(self.model, "checkpoint_sha256", None),
            "checkpoint_path": getattr(self.model, "checkpoint_path", None),
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": str(self.device),
            "spec": self.spec.describe(),
        }


class SamVitBackend(NetworkBackend):
    """SAM-Med2D (256 px, adapters), Meta SAM vit_b/l/h and MedSAM (1024 px)."""

    @property
    def label(self) -> str:
        return {"sam-med2d": "SAM-Med2D", "medsam": "MedSAM"}.get(self.kind, f"SAM {self.kind[4:]}")

    def mask_prompt(self, low_res_logits: np.ndarray) -> np.ndarray:
        # SAM-Med2D was trained (and is evaluated) with sigmoid(previous logits) as mask prompt.
        low = np.asarray(low_res_logits, np.float32)
        return sigmoid(low) if self.kind == "sam-med2d" else low


class LiteMedSamBackend(NetworkBackend):
    """LiteMedSAM: TinyViT encoder at 256 px, box-trained, single-mask output as officially run.

    Boxes (and box + mask prompts) go to the network as they are. Clicks become boxes: each
    click stands for the object under it (:mod:`.box_clicks`), which it adds or removes.
    """

    label = "LiteMedSAM"
    multimask = False
    auto_masks = "region-boxes"
    stability_score_thresh = 0.8  # its logits are softer than SAM's: organ masks score .8-.93

    def __init__(self, model, optimized: bool = True) -> None:
        super().__init__(model)
        if optimized:
            self.encoder, self.input_format = fast_encoder(model.image_encoder, self.device), torch.channels_last
        # On the CPU one slice at a time is faster than batches (smaller tensors, reused memory),
        # and two slices in flight, each on half the cores, beat one on all of them.
        on_cpu = optimized and self.device.type == "cpu"
        self.encoder_batch = 1 if on_cpu else None
        self.workers = SliceWorkers(2 if on_cpu else 1)
        self.token_decoder = TokenDecoder(model.prompt_encoder, model.mask_decoder) if optimized else None

    def decode_all(self, embedding, coords, labels, boxes=None, masks=None, multimask=True):
        if self.token_decoder is None:
            return super().decode_all(embedding, coords, labels, boxes, masks, multimask)
        points = (coords, labels) if coords is not None else None
        sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=masks)
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
        and no mask prompt (trained without one: 3D Dice .84 without vs .72 with, CT+MR)."""
        return {"box_margin": 0.0, "min_margin": 3.0 * max(slice_shape) / self.frame, "use_mask_prompt": False}


def fast_encoder(encoder: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """An inference copy of a TinyViT: BatchNorm folded, biases gathered, channels-last, and on
    the CPU its full-resolution conv blocks run in row bands. The model itself stays untouched
    (its state dict keeps the checkpoint's keys). Same outputs within float rounding (tested)."""
    dtype = next(encoder.parameters()).dtype
    fast = copy.deepcopy(encoder).float()
    fast.optimize_for_inference(band_rows=16 if device.type == "cpu" else None)
    return fast.to(dtype=dtype, memory_format=torch.channels_last)


class ClassicalBackend(Backend):
    """The weight-free segmenter; its "embedding" is the slice itself at 256 x 256."""

    preprocess = "sam-med2d"
    auto_masks = "regions"

    def __init__(self, model: ClassicalModel) -> None:
        self.model = model
        self.kind, self.label = model.kind, model.label
        self.frame, self.low_res = model.img_size, model.low_res_size
        self.embedding_shape = (1, self.frame, self.frame)

    def embed(self, rgb: np.ndarray) -> torch.Tensor:
        grey = torch.from_numpy(np.ascontiguousarray(rgb)).float().mean(dim=-1)
        rows = torch.from_numpy(nearest_indices(rgb.shape[1], self.frame))
        cols = torch.from_numpy(nearest_indices(rgb.shape[2], self.frame))
        return grey.index_select(1, rows).index_select(2, cols)[:, None]

    def decode(self, embedding, tf, group, multimask):
        image = embedding[0, 0].cpu().numpy()
        frames, scores = [], []
        for p in group:
            points = None if p.points is None else tf.coords(p.points)
            box = None if p.box is None else tf.boxes(p.box)[0]
            logits, score = self.model.segment(image, points, p.point_labels, box, p.mask_input)
            frames.append(logits)
            scores.append(score)
        frame = torch.from_numpy(np.stack(frames))[:, None]
        return frame, F.adaptive_avg_pool2d(frame, self.low_res), torch.tensor(scores)

    def protocol_mask_prompt(self, low_res_logits: np.ndarray) -> np.ndarray:
        return np.asarray(low_res_logits, np.float32)  # it reads its own logits, not probabilities

    def describe(self) -> dict:
        return self.model.describe()


def backend_for(model) -> Backend:
    """The backend for a loaded model (what :func:`load_model` returns), or a backend itself."""
    if isinstance(model, Backend):
        return model
    if isinstance(model, ClassicalModel):
        return ClassicalBackend(model)
    family = getattr(getattr(model, "spec", None), "family", None)
    if family == "lite-medsam":
        return LiteMedSamBackend(model)
    if family == "vit":
        return SamVitBackend(model)
    raise TypeError(f"not a model napari-sammed can run: {type(model).__name__}")
