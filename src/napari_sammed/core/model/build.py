"""Build the network of a :class:`~.specs.ModelSpec` from ``segment_anything``'s modules."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .lite_medsam import LiteMedSamSpec
from .sam_import import modeling
from .sam_med2d import AdapterImageEncoderViT
from .specs import PIXEL_MEAN, PIXEL_STD, ModelSpec
from .tiny_vit import TinyViT


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
