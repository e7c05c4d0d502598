"""The backend contract every model family implements, and the SAM ViT backend.

A backend embeds a batch of uint8 RGB slices and decodes groups of same-shape prompts against
one embedding, in its model's square frame. :class:`Backend` declares all of it; ``SliceEngine``
is the only caller, and everything above goes through ``SliceEngine``. One backend per family
(``core/engine/families.py`` lists them):

- :class:`SamVitBackend`: SAM-Med2D, Meta SAM vit_b/l/h and MedSAM (ViT encoders).
- :class:`~.lite_medsam_backend.LiteMedSamBackend`: LiteMedSAM (TinyViT encoder, box-trained).
- :class:`~.weight_free_backend.WeightFreeBackend`: the weight-free intensity segmenter.

Callers never ask which one they hold: differences are data (frame, low-res size, embedding
shape, which automatic-mask strategy fits) or overridden methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..model.loaded import LoadedModel
from .frame import FrameTransform


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
                raise InputError(None, "point_labels must be given with points")
            self.point_labels = np.asarray(self.point_labels, dtype=np.int64).reshape(-1)
            if len(self.point_labels) != len(self.points):
                raise InputError(None, f"{len(self.points)} points but {len(self.point_labels)} labels")
        else:
            self.points, self.point_labels = None, None
        if self.box is not None:
            self.box = np.asarray(self.box, dtype=np.float64).reshape(4)
            if self.box[2] <= self.box[0] or self.box[3] <= self.box[1]:
                raise InputError(None, f"box must be x0 < x1, y0 < y1; got {self.box.tolist()}")
        if self.points is None and self.box is None and self.mask_input is None:
            raise InputError(None, "a prompt needs points, a box or a mask")

    @property
    def signature(self) -> tuple[int, bool, bool]:
        """Prompts with equal signatures can share one decoder call."""
        return (0 if self.points is None else len(self.points), self.box is not None, self.mask_input is not None)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, float32."""
    return (1.0 / (1.0 + np.exp(-np.asarray(logits, np.float32)))).astype(np.float32)


class Backend(ABC):
    """What a model family must provide. ``__init__(loaded: LoadedModel)`` sets the attributes.

    ``frame``: side of the square model input (px); ``low_res``: side of the low-res logits;
    ``embedding_shape``: (C, G, G) of one slice's embedding; ``preprocess``: the
    :class:`FrameTransform` mode; ``multimask``: the family's own choice for a single prompt;
    ``auto_masks``: the automatic-mask strategy that fits it (a key of
    ``automatic_masks.STRATEGIES``); ``stability_score_thresh``: its automatic-mask filter.
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

    @abstractmethod
    def embed(self, rgb: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, *embedding_shape) float32 on ``device``."""

    @abstractmethod
    def decode(
        self, embedding: torch.Tensor, tf: FrameTransform, group: Sequence[Prompt], multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Same-shape prompts on one embedding (1, C, G, G) -> frame logits (B, 1, S, S),
        low-res logits (B, 1, L, L) and predicted quality (B,)."""

    @abstractmethod
    def decode_all(
        self,
        embedding: torch.Tensor,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        multimask: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw decoding in the model frame, every candidate kept (automatic masks use it).

        B prompts against one embedding (1, C, G, G): coords (B, K, 2) x, y in the frame; labels
        (B, K); boxes (B, 4); masks (B, 1, L, L). -> low-res logits (B, M, L, L) and predicted
        quality (B, M); M is 3 with ``multimask`` where the model has three outputs, else 1.
        """

    def mask_prompt(self, low_res_logits: np.ndarray) -> np.ndarray:
        """A previous low-res output, as this model takes it back as ``mask_input``."""
        return np.asarray(low_res_logits, np.float32)

    def protocol_mask_prompt(self, low_res_logits: np.ndarray) -> np.ndarray:
        """What SAM-Med2D's test protocol feeds back: sigmoid(previous logits) for every network."""
        return sigmoid(low_res_logits)

    @abstractmethod
    def describe(self) -> dict:
        """Provenance: what produced a result."""

    def propagation_recipe(self, slice_shape: tuple[int, int]) -> dict:
        """How propagation prompts the next slice from the previous mask, measured per family:
        box grown by 10 % (>= 2 px) plus the previous logits as mask prompt."""
        return {"box_margin": 0.1, "min_margin": 2.0, "use_mask_prompt": True}


class NetworkBackend(Backend):
    """A ``segment_anything``-style network: ``image_encoder``, ``prompt_encoder``, ``mask_decoder``."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.network, self.spec, self.weights = loaded.network, loaded.spec, loaded.weights
        param = next(self.network.image_encoder.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.kind, self.label, self.preprocess = self.spec.kind, self.spec.label, self.spec.preprocess
        self.frame, self.low_res = self.spec.img_size, self.spec.low_res_size
        self.embedding_shape = (256, self.spec.grid, self.spec.grid)
        self.encoder, self.input_format = self.network.image_encoder, torch.contiguous_format

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
        points = (coords, labels) if coords is not None else None
        sparse, dense = self.network.prompt_encoder(points=points, boxes=boxes, masks=masks)
        return self.network.mask_decoder(
            image_embeddings=embedding,
            image_pe=self.network.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "label": self.label,
            "checkpoint_sha256": None if self.weights is None else self.weights.sha256,
            "checkpoint_path": None if self.weights is None else self.weights.path,
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": str(self.device),
            "spec": self.spec.describe(),
        }


class SamVitBackend(NetworkBackend):
    """SAM-Med2D (256 px, adapters), Meta SAM vit_b/l/h and MedSAM (1024 px)."""

    def mask_prompt(self, low_res_logits: np.ndarray) -> np.ndarray:
        # SAM-Med2D was trained (and is evaluated) with sigmoid(previous logits) as mask prompt.
        low = np.asarray(low_res_logits, np.float32)
        return sigmoid(low) if self.kind == "sam-med2d" else low
