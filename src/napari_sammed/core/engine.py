"""SliceEngine: embed 2D slices once, then decode prompts against the cached embeddings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .classical import ClassicalModel
from .transforms import FrameTransform, nearest_indices

ProgressCallback = Callable[[int, int], None]


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
        return (0 if self.points is None else len(self.points), self.box is not None, self.mask_input is not None)


@dataclass
class Prediction:
    """One object's result on one slice."""

    mask: np.ndarray  # (H, W) bool
    logits: np.ndarray  # (H, W) float32
    iou: float  # the decoder's predicted IoU (a heuristic score for the weight-free engine)
    low_res_logits: np.ndarray  # (1, L, L) float32, feed back as ``mask_input``


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.asarray(logits, np.float32)))).astype(np.float32)


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def as_rgb_batch(images: np.ndarray) -> np.ndarray:
    """(H, W), (N, H, W) grey or (N, H, W, 3) RGB uint8 -> (N, H, W, 3) uint8."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 (window them first, e.g. napari_sammed.to_uint8); got {images.dtype}"
        )
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 3:
        return np.repeat(images[..., None], 3, axis=-1)
    if images.ndim == 4 and images.shape[-1] == 3:
        return images
    raise ValueError(f"expected (H,W), (N,H,W) or (N,H,W,3) uint8 slices, got shape {images.shape}")


class SliceEngine:
    """Embeds slices and decodes prompts for a SAM-family model or the weight-free segmenter.

    ``embed`` returns float32 embeddings (N, 256, G, G) on the engine's device (G = 16 for
    SAM-Med2D); the weight-free engine's "embedding" is the slice itself at 256 x 256.
    """

    def __init__(self, model, batch_size: int = 4) -> None:
        self.model = model
        self.batch_size = batch_size
        self.is_classical = isinstance(model, ClassicalModel)
        if self.is_classical:
            self.device, self.dtype = torch.device("cpu"), torch.float32
            self.frame, self.low_res, self.mode = model.img_size, model.low_res_size, "sam-med2d"
        else:
            param = next(model.image_encoder.parameters())
            self.device, self.dtype = param.device, param.dtype
            self.frame, self.low_res, self.mode = model.spec.img_size, model.spec.low_res_size, model.spec.preprocess

    # ---- identity ------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.model.kind if self.is_classical else self.model.spec.kind

    def describe(self) -> dict:
        """Provenance: what produced a result."""
        if self.is_classical:
            return self.model.describe()
        return {
            "kind": self.kind,
            "checkpoint_sha256": getattr(self.model, "checkpoint_sha256", None),
            "checkpoint_path": getattr(self.model, "checkpoint_path", None),
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": str(self.device),
            "spec": self.model.spec.describe(),
        }

    @property
    def embedding_shape(self) -> tuple[int, int, int]:
        """(C, G, G) of one slice's embedding."""
        if self.is_classical:
            return (1, self.frame, self.frame)
        grid = self.model.spec.grid
        return (256, grid, grid)

    def transform(self, image_size: tuple[int, int]) -> FrameTransform:
        return FrameTransform(self.mode, self.frame, image_size)

    # ---- mask prompts --------------------------------------------------------------------
    def mask_logits(self, mask: np.ndarray, image_size: tuple[int, int] | None = None) -> np.ndarray:
        """A binary slice mask (e.g. a hand-painted seed) as (1, L, L) low-res logits of +-8."""
        mask = np.asarray(mask, bool)
        frame = self.transform(image_size or mask.shape).masks(mask)
        fraction = F.adaptive_avg_pool2d(frame, self.low_res)[0]
        return (16.0 * (fraction - 0.5)).numpy().astype(np.float32)

    def mask_prompt(self, low_res_logits: np.ndarray) -> np.ndarray:
        """What to feed back as ``mask_input`` from a previous low-res output.

        SAM-Med2D was trained (and is evaluated) with sigmoid(previous logits) as the mask
        prompt; SAM, MedSAM and the weight-free engine take the logits themselves.
        """
        low = np.asarray(low_res_logits, np.float32)
        return sigmoid(low) if self.kind == "sam-med2d" else low

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
        n, height, width = rgb.shape[:3]
        step = batch_size or self.batch_size
        out = []
        for start in range(0, n, step):
            out.append(self._embed_batch(rgb[start : start + step], (height, width)))
            if progress is not None:
                progress(min(start + step, n), n)
        return torch.cat(out)

    def _embed_batch(self, rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        batch = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device)
        if self.is_classical:
            grey = batch.float().mean(dim=-1)
            rows = torch.from_numpy(nearest_indices(size[0], self.frame))
            cols = torch.from_numpy(nearest_indices(size[1], self.frame))
            return grey.index_select(1, rows).index_select(2, cols)[:, None]
        x = self.transform(size).images(batch).to(self.dtype)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            emb = self.model.image_encoder(x)
        return emb.float()

    # ---- decoding ------------------------------------------------------------------------
    def predict(
        self,
        embedding: torch.Tensor | np.ndarray,
        image_size: tuple[int, int],
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask: bool = True,
    ) -> Prediction:
        """Decode one object's prompts on one embedded slice of size ``image_size`` (H, W)."""
        prompt = Prompt(points, point_labels, box, mask_input)
        return self.predict_batch(embedding, image_size, [prompt], multimask)[0]

    @torch.inference_mode()
    def predict_batch(
        self,
        embedding: torch.Tensor | np.ndarray,
        image_size: tuple[int, int],
        prompts: Sequence[Prompt],
        multimask: bool = True,
    ) -> list[Prediction]:
        """Decode several objects on one slice; prompts of the same shape share a decoder call."""
        emb = self._as_embedding(embedding)
        tf = self.transform(image_size)
        results: list[Prediction | None] = [None] * len(prompts)
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(p.signature, []).append(i)
        for indices in groups.values():
            group = [prompts[i] for i in indices]
            frame_logits, low_res, iou = self._decode_group(emb, tf, group, multimask)
            full = tf.logits(frame_logits)[:, 0].cpu().numpy().astype(np.float32)
            low_np = low_res.cpu().numpy().astype(np.float32)
            for j, i in enumerate(indices):
                results[i] = Prediction(full[j] > 0, full[j], float(iou[j]), low_np[j])
        return results  # type: ignore[return-value]

    def _as_embedding(self, embedding) -> torch.Tensor:
        emb = torch.as_tensor(np.asarray(embedding) if not isinstance(embedding, torch.Tensor) else embedding)
        if emb.ndim == 3:
            emb = emb[None]
        return emb.to(self.device, torch.float32)

    def _decode_group(self, emb, tf: FrameTransform, group: list[Prompt], multimask: bool):
        """-> (frame logits (B,1,S,S), low-res logits (B,1,L,L), iou (B,)) for same-shape prompts."""
        if self.is_classical:
            return self._classical_group(emb, tf, group)
        coords = labels = boxes = masks = None
        if group[0].points is not None:
            coords = torch.tensor(np.stack([tf.coords(p.points) for p in group]), dtype=torch.float32, device=self.device)
            labels = torch.tensor(np.stack([p.point_labels for p in group]), dtype=torch.int64, device=self.device)
        if group[0].box is not None:
            boxes = torch.tensor(np.concatenate([tf.boxes(p.box) for p in group]), dtype=torch.float32, device=self.device)
        if group[0].mask_input is not None:
            masks = torch.tensor(
                np.stack([np.asarray(p.mask_input, np.float32).reshape(1, self.low_res, self.low_res) for p in group]),
                device=self.device,
            )
        low_res, iou = self.decode(emb, coords, labels, boxes, masks, multimask)
        frame = F.interpolate(low_res, (self.frame, self.frame), mode="bilinear", align_corners=False)
        return frame, low_res, iou

    def decode(
        self,
        embedding: torch.Tensor,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        multimask: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw decoder call in the model frame: B prompts against one embedding (1, C, G, G).

        coords (B, K, 2) x, y in the model frame; labels (B, K); boxes (B, 4); masks (B, 1, L, L).
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
        """Like :meth:`decode` but returns every output: (B, M, L, L) logits and (B, M) IoUs."""
        points = (coords, labels) if coords is not None else None
        sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=masks)
        return self.model.mask_decoder(
            image_embeddings=embedding,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )

    def _classical_group(self, emb, tf: FrameTransform, group: list[Prompt]):
        image = emb[0, 0].cpu().numpy()
        frames, scores = [], []
        for p in group:
            points = None if p.points is None else tf.coords(p.points)
            box = None if p.box is None else tf.boxes(p.box)[0]
            logits, score = self.model.segment(image, points, p.point_labels, box, p.mask_input)
            frames.append(logits)
            scores.append(score)
        frame = torch.from_numpy(np.stack(frames))[:, None]
        low_res = F.adaptive_avg_pool2d(frame, self.low_res)
        return frame, low_res, torch.tensor(scores)
