"""Model kinds and their builders: SAM-Med2D (256 px, adapters), Meta SAM vit_b/l/h, MedSAM,
LiteMedSAM (TinyViT, 256 px)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import partial

import torch
from torch import nn

from .lite_medsam import LiteMedSamSpec
from .model import AdapterImageEncoderViT
from .sam_import import modeling
from .tiny_vit import TinyViT

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build a model and to pre-process its input.

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
    family = "vit"

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def low_res_size(self) -> int:
        return 4 * self.grid

    @property
    def is_official_size(self) -> bool:
        base = MODEL_SPECS.get(self.kind)
        return base is not None and replace(base) == self

    def describe(self) -> dict:
        out = asdict(self)
        out["global_attn_indexes"] = list(self.global_attn_indexes)
        out["official_size"] = self.is_official_size
        return out


_VIT_B = dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11))
MODEL_SPECS: dict[str, ModelSpec] = {
    "sam-med2d": ModelSpec("sam-med2d", 256, adapters=True, preprocess="sam-med2d", **_VIT_B),
    "sam_vit_b": ModelSpec("sam_vit_b", 1024, adapters=False, preprocess="sam", **_VIT_B),
    "sam_vit_l": ModelSpec("sam_vit_l", 1024, 1024, 24, 16, (5, 11, 17, 23), False, "sam"),
    "sam_vit_h": ModelSpec("sam_vit_h", 1024, 1280, 32, 16, (7, 15, 23, 31), False, "sam"),
    "medsam": ModelSpec("medsam", 1024, adapters=False, preprocess="medsam", **_VIT_B),
    "lite-medsam": LiteMedSamSpec(),
}


def build_model(spec: ModelSpec | LiteMedSamSpec, device: str | torch.device = "cpu") -> nn.Module:
    """Build an (untrained) ``segment_anything`` ``Sam`` for ``spec``; ``device="meta"`` allocates nothing."""
    m = modeling()
    with torch.device(device):
        if spec.family == "lite-medsam":
            encoder = TinyViT()
        elif spec.adapters:
            encoder = AdapterImageEncoderViT(
                spec.img_size, spec.embed_dim, spec.depth, spec.num_heads,
                spec.global_attn_indexes, spec.window_size, spec.patch_size,
            )
        else:
            encoder = m.ImageEncoderViT(
                img_size=spec.img_size, patch_size=spec.patch_size, embed_dim=spec.embed_dim,
                depth=spec.depth, num_heads=spec.num_heads, mlp_ratio=4, out_chans=256,
                qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), use_rel_pos=True,
                window_size=spec.window_size, global_attn_indexes=spec.global_attn_indexes,
            )
        sam = m.Sam(
            image_encoder=encoder,
            prompt_encoder=m.PromptEncoder(
                embed_dim=256, image_embedding_size=(spec.grid, spec.grid),
                input_image_size=(spec.img_size, spec.img_size), mask_in_chans=16,
            ),
            mask_decoder=m.MaskDecoder(
                num_multimask_outputs=3,
                transformer=m.TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
                transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256,
            ),
            pixel_mean=list(PIXEL_MEAN),
            pixel_std=list(PIXEL_STD),
        )
    sam.spec = spec
    return sam.eval()
