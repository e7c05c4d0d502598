"""The weight-free family's backend: the intensity segmenter behind the backend contract."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..model.loaded import LoadedModel
from .backends import Backend
from .frame import nearest_indices


class WeightFreeBackend(Backend):
    """The weight-free segmenter; its "embedding" is the slice itself at 256 x 256."""

    auto_masks = "regions"

    def __init__(self, loaded: LoadedModel) -> None:
        self.network, spec = loaded.network, loaded.spec
        self.kind, self.label, self.preprocess = spec.kind, spec.label, spec.preprocess
        self.frame, self.low_res = spec.img_size, spec.low_res_size
        self.embedding_shape = (1, self.frame, self.frame)

    def embed(self, rgb: np.ndarray) -> torch.Tensor:
        grey = torch.from_numpy(np.ascontiguousarray(rgb)).float().mean(dim=-1)
        rows = torch.from_numpy(nearest_indices(rgb.shape[1], self.frame))
        cols = torch.from_numpy(nearest_indices(rgb.shape[2], self.frame))
        return grey.index_select(1, rows).index_select(2, cols)[:, None]

    def decode(self, embedding, tf, group, multimask):
        prompts = [(None if p.points is None else tf.coords(p.points), p.point_labels,
                    None if p.box is None else tf.boxes(p.box)[0], p.mask_input) for p in group]
        frame, scores = self._segment(embedding, prompts)
        return frame, F.adaptive_avg_pool2d(frame, self.low_res), scores

    def decode_all(self, embedding, coords, labels, boxes=None, masks=None, multimask=True):
        """One candidate per prompt, whatever ``multimask``: (B, 1, L, L) logits, (B, 1) scores."""
        given = next(t for t in (coords, boxes, masks) if t is not None)

        def row(tensor, i):
            return None if tensor is None else tensor[i].cpu().numpy()

        prompts = [(row(coords, i), row(labels, i), row(boxes, i), row(masks, i)) for i in range(len(given))]
        frame, scores = self._segment(embedding, prompts)
        return F.adaptive_avg_pool2d(frame, self.low_res), scores[:, None]

    def _segment(self, embedding, prompts) -> tuple[torch.Tensor, torch.Tensor]:
        """(points, labels, box, mask) per prompt, in the frame -> frame logits (B, 1, S, S), scores (B,)."""
        image = embedding[0, 0].cpu().numpy()
        frames, scores = [], []
        for points, labels, box, mask in prompts:
            logits, score = self.network.segment(image, points, labels, box, mask)
            frames.append(logits)
            scores.append(score)
        return torch.from_numpy(np.stack(frames))[:, None], torch.tensor(scores)

    def protocol_mask_prompt(self, low_res_logits: np.ndarray) -> np.ndarray:
        return np.asarray(low_res_logits, np.float32)  # it reads its own logits, not probabilities

    def describe(self) -> dict:
        return self.network.describe()
