"""SliceEngine: embed 2D slices once, then decode prompts against the cached embeddings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..model.loaded import LoadedModel
from .backends import Backend, Prompt, sigmoid
from .families import backend_for
from .frame import FrameTransform

ProgressCallback = Callable[[int, int], None]

__all__ = ["Prediction", "Prompt", "SliceEngine", "as_rgb_batch", "sigmoid"]


@dataclass
class Prediction:
    """One object's result on one slice."""

    mask: np.ndarray  # (H, W) bool
    logits: np.ndarray  # (H, W) float32
    iou: float  # the decoder's predicted IoU (a heuristic score for the weight-free engine)
    low_res_logits: np.ndarray  # (1, L, L) float32, feed back as ``mask_input``


def as_rgb_batch(images: np.ndarray) -> np.ndarray:
    """(H, W), (N, H, W) grey or (N, H, W, 3) RGB uint8 -> (N, H, W, 3) uint8."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise InputError(
            None, f"images must be uint8 (window them first, e.g. napari_sammed.to_uint8); got {images.dtype}"
        )
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 3:
        return np.repeat(images[..., None], 3, axis=-1)
    if images.ndim == 4 and images.shape[-1] == 3:
        return images
    raise InputError(None, f"expected (H,W), (N,H,W) or (N,H,W,3) uint8 slices, got shape {images.shape}")


class SliceEngine:
    """Embeds slices and decodes prompts with any model :func:`load_model` returns.

    ``embed`` returns float32 embeddings (N, C, G, G) on the engine's device (256 x 16 x 16 for
    SAM-Med2D, 256 x 64 x 64 for LiteMedSAM). Everything model-specific sits in the family's
    backend, which only this class calls: propagation, evaluation and automatic masks use the
    methods here. A :class:`~.backends.Backend` may be given instead of a model (benchmarks
    tune one).
    """

    def __init__(self, model: LoadedModel | Backend, batch_size: int = 4) -> None:
        self._backend = model if isinstance(model, Backend) else backend_for(model)
        self.batch_size = batch_size
        self.device, self.dtype = self._backend.device, self._backend.dtype
        self.frame, self.low_res = self._backend.frame, self._backend.low_res

    # ---- identity ------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self._backend.kind

    @property
    def label(self) -> str:
        """Human name of the model, e.g. "LiteMedSAM"."""
        return self._backend.label

    def describe(self) -> dict:
        """Provenance: what produced a result."""
        return self._backend.describe()

    @property
    def embedding_shape(self) -> tuple[int, int, int]:
        """(C, G, G) of one slice's embedding."""
        return self._backend.embedding_shape

    def transform(self, image_size: tuple[int, int]) -> FrameTransform:
        return self._backend.transform(image_size)

    # ---- the family's recipes ------------------------------------------------------------
    @property
    def multimask(self) -> bool:
        """Whether a single prompt takes the best of three candidates (the family's own use)."""
        return self._backend.multimask

    @property
    def auto_masks(self) -> str:
        """The automatic-mask strategy that fits the model (a key of ``automatic_masks.STRATEGIES``)."""
        return self._backend.auto_masks

    @property
    def stability_score_thresh(self) -> float:
        """The model's automatic-mask stability filter."""
        return self._backend.stability_score_thresh

    def propagation_recipe(self, slice_shape: tuple[int, int]) -> dict:
        """How propagation prompts the next slice from the previous mask (box margins, mask prompt)."""
        return self._backend.propagation_recipe(slice_shape)

    # ---- mask prompts --------------------------------------------------------------------
    def mask_logits(self, mask: np.ndarray, image_size: tuple[int, int] | None = None) -> np.ndarray:
        """A binary slice mask (e.g. a hand-painted seed) as (1, L, L) low-res logits of +-8."""
        mask = np.asarray(mask, bool)
        frame = self.transform(image_size or mask.shape).masks(mask)
        fraction = F.adaptive_avg_pool2d(frame, self.low_res)[0]
        return (16.0 * (fraction - 0.5)).numpy().astype(np.float32)

    def mask_prompt(self, low_res_logits: np.ndarray) -> np.ndarray:
        """What to feed back as ``mask_input`` from a previous low-res output (model-specific)."""
        return self._backend.mask_prompt(low_res_logits)

    def protocol_mask_prompt(self, low_res_logits: np.ndarray) -> np.ndarray:
        """What SAM-Med2D's test protocol feeds back: sigmoid(previous logits) for every network."""
        return self._backend.protocol_mask_prompt(low_res_logits)

    # ---- embedding -----------------------------------------------------------------------
    @torch.inference_mode()
    def embed(
        self,
        images: np.ndarray,
        batch_size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> torch.Tensor:
        """Embed uint8 slices: (N,H,W,3) RGB, (N,H,W) grey or one (H,W) slice -> (N, C, G, G)."""
        rgb = as_rgb_batch(images)
        n = len(rgb)
        step = batch_size or self.batch_size
        out = []
        for start in range(0, n, step):
            out.append(self._backend.embed(rgb[start : start + step]))
            if progress is not None:
                progress(min(start + step, n), n)
        return torch.cat(out)

    # ---- decoding ------------------------------------------------------------------------
    def predict(
        self,
        embedding: torch.Tensor | np.ndarray,
        image_size: tuple[int, int],
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask: bool | None = None,
    ) -> Prediction:
        """Decode one object's prompts on one embedded slice of size ``image_size`` (H, W).

        ``multimask=None`` follows the model's official use (three candidates, best predicted
        IoU for SAM-family ViTs; the single output for LiteMedSAM).
        """
        prompt = Prompt(points, point_labels, box, mask_input)
        return self.predict_batch(embedding, image_size, [prompt], multimask)[0]

    @torch.inference_mode()
    def predict_batch(
        self,
        embedding: torch.Tensor | np.ndarray,
        image_size: tuple[int, int],
        prompts: Sequence[Prompt],
        multimask: bool | None = None,
    ) -> list[Prediction]:
        """Decode several objects on one slice; prompts of the same shape share a decoder call."""
        emb = self.as_embedding(embedding)
        tf = self.transform(image_size)
        multimask = self.multimask if multimask is None else multimask
        results: list[Prediction | None] = [None] * len(prompts)
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(p.signature, []).append(i)
        for indices in groups.values():
            group = [prompts[i] for i in indices]
            frame_logits, low_res, iou = self._backend.decode(emb, tf, group, multimask)
            full = tf.logits(frame_logits)[:, 0].cpu().numpy().astype(np.float32)
            low_np = low_res.cpu().numpy().astype(np.float32)
            for j, i in enumerate(indices):
                results[i] = Prediction(full[j] > 0, full[j], float(iou[j]), low_np[j])
        return results  # type: ignore[return-value]

    def decode_all(
        self,
        embedding: torch.Tensor,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        multimask: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw decoding in the model frame, every candidate kept (automatic masks): see
        :meth:`.backends.Backend.decode_all`."""
        return self._backend.decode_all(embedding, coords, labels, boxes, masks, multimask)

    def as_embedding(self, embedding) -> torch.Tensor:
        """One slice's embedding as a (1, C, G, G) float32 tensor on the engine's device."""
        emb = torch.as_tensor(np.asarray(embedding) if not isinstance(embedding, torch.Tensor) else embedding)
        if emb.ndim == 3:
            emb = emb[None]
        return emb.to(self.device, torch.float32)
