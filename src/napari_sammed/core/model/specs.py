"""Model specs: what builds a network and pre-processes its input. Plain data: building a
network is :mod:`.build`; which families exist is ``core/engine/families.py``.

This module holds the ViT family's spec (SAM-Med2D at 256 px with adapters, Meta SAM vit_b/l/h
and MedSAM at 1024 px) and :class:`Spec`, what every family's spec provides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


class Spec(Protocol):
    """What every family's spec provides (a frozen dataclass per family)."""

    kind: str  # the name ``--kind`` takes
    img_size: int  # side of the square model frame (px)
    preprocess: str  # the :class:`~napari_sammed.core.engine.frame.FrameTransform` mode

    @property
    def label(self) -> str: ...  # human name, e.g. "SAM-Med2D"

    @property
    def low_res_size(self) -> int: ...  # side of the low-res logits

    def describe(self) -> dict: ...  # for provenance records


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build a SAM ViT and to pre-process its input.

    ``preprocess`` is ``"sam-med2d"`` (normalise, nearest-resize to a square), ``"sam"``
    (resize longest side, normalise, pad) or ``"medsam"`` (min-max to [0, 1], square resize).
    """

    kind: str
    img_size: int
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    adapters: bool
    preprocess: str
    window_size: int = 14
    patch_size: int = 16

    @property
    def label(self) -> str:
        return {"sam-med2d": "SAM-Med2D", "medsam": "MedSAM"}.get(self.kind, f"SAM {self.kind[4:]}")

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def low_res_size(self) -> int:
        return 4 * self.grid

    @property
    def is_official_size(self) -> bool:
        base = VIT_SPECS.get(self.kind)
        return base is not None and replace(base) == self

    def as_kind(self, wanted: ModelSpec) -> ModelSpec | None:
        """These weights run as ``wanted``'s kind (its pre-processing), or None where they cannot:
        adapters and frame size must agree (MedSAM's weights are vit_b's shape, say)."""
        if (wanted.adapters, wanted.img_size) != (self.adapters, self.img_size):
            return None
        return replace(self, kind=wanted.kind, preprocess=wanted.preprocess)

    def describe(self) -> dict:
        out = asdict(self)
        out["global_attn_indexes"] = list(self.global_attn_indexes)
        out["official_size"] = self.is_official_size
        return out


_VIT_B = dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11))
#: The ViT family's kinds at their published sizes.
VIT_SPECS: dict[str, ModelSpec] = {
    "sam-med2d": ModelSpec("sam-med2d", 256, adapters=True, preprocess="sam-med2d", **_VIT_B),
    "sam_vit_b": ModelSpec("sam_vit_b", 1024, adapters=False, preprocess="sam", **_VIT_B),
    "sam_vit_l": ModelSpec("sam_vit_l", 1024, 1024, 24, 16, (5, 11, 17, 23), False, "sam"),
    "sam_vit_h": ModelSpec("sam_vit_h", 1024, 1280, 32, 16, (7, 15, 23, 31), False, "sam"),
    "medsam": ModelSpec("medsam", 1024, adapters=False, preprocess="medsam", **_VIT_B),
}



def detect_vit(state_dict: Mapping[str, torch.Tensor], name_hint: str = "") -> ModelSpec | None:
    """The ViT spec of a state dict, from its keys and shapes; None if it holds no SAM ViT.
    MedSAM is told from SAM vit_b only by its file name: its keys are vit_b's."""
    from .checkpoints import CheckpointError

    pos = state_dict.get("image_encoder.pos_embed")
    if pos is None or pos.ndim != 4:
        return None
    grid, dim = int(pos.shape[1]), int(pos.shape[3])
    blocks = sorted({int(k.split(".")[2]) for k in state_dict if k.startswith("image_encoder.blocks.")})
    depth = len(blocks)
    adapters = any(".Adapter." in k for k in state_dict)
    rel = state_dict.get("image_encoder.blocks.0.attn.rel_pos_h")
    if rel is None or depth == 0:
        raise CheckpointError("not a SAM-family checkpoint: no encoder blocks with relative positions")
    head_dim = int(rel.shape[1])
    global_idx = tuple(
        i for i in blocks
        if state_dict.get(f"image_encoder.blocks.{i}.attn.rel_pos_h", rel).shape[0] == 2 * grid - 1
    )
    img_size = grid * 16
    if adapters:
        kind, preprocess = "sam-med2d", "sam-med2d"
    elif "medsam" in name_hint.lower():
        kind, preprocess = "medsam", "medsam"
    else:
        kind = {768: "sam_vit_b", 1024: "sam_vit_l", 1280: "sam_vit_h"}.get(dim, "sam_vit_b")
        preprocess = "sam"
    return ModelSpec(kind, img_size, dim, depth, dim // head_dim, global_idx, adapters, preprocess)
