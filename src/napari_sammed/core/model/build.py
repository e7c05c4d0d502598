"""Build a family's (untrained) network from ``segment_anything``'s modules.

A builder takes a spec and a device (``"meta"`` allocates nothing: loading builds there, then
assigns the checkpoint's tensors) and returns a ``segment_anything`` ``Sam``. The modules are
imported when a network is built, so the weight-free engine never needs ``segment_anything``.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .lite_medsam import LiteMedSamSpec
from .specs import PIXEL_MEAN, PIXEL_STD, ModelSpec


def build_sam_vit(spec: ModelSpec, device: str | torch.device = "cpu") -> nn.Module:
    """SAM-Med2D (ViT with adapters), Meta SAM vit_b/l/h or MedSAM at ``spec``'s size."""
    from .sam_import import modeling
    from .sam_med2d import AdapterImageEncoderViT

    with torch.device(device):
        if spec.adapters:
            encoder = AdapterImageEncoderViT(
                spec.img_size, spec.embed_dim, spec.depth, spec.num_heads,
                spec.global_attn_indexes, spec.window_size, spec.patch_size,
            )
        else:
            encoder = modeling().ImageEncoderViT(
                img_size=spec.img_size, patch_size=spec.patch_size, embed_dim=spec.embed_dim,
                depth=spec.depth, num_heads=spec.num_heads, mlp_ratio=4, out_chans=256,
                qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), use_rel_pos=True,
                window_size=spec.window_size, global_attn_indexes=spec.global_attn_indexes,
            )
        return _sam(encoder, spec.img_size, spec.grid)


def build_lite_medsam(spec: LiteMedSamSpec, device: str | torch.device = "cpu") -> nn.Module:
    """LiteMedSAM: a TinyViT encoder with SAM's prompt encoder and mask decoder."""
    from .tiny_vit import TinyViT

    with torch.device(device):
        return _sam(TinyViT(), spec.img_size, spec.grid)


def _sam(encoder: nn.Module, img_size: int, grid: int) -> nn.Module:
    """SAM's prompt encoder and mask decoder around ``encoder``, in eval mode."""
    from .sam_import import modeling

    m = modeling()
    sam = m.Sam(
        image_encoder=encoder,
        prompt_encoder=m.PromptEncoder(
            embed_dim=256, image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size), mask_in_chans=16,
        ),
        mask_decoder=m.MaskDecoder(
            num_multimask_outputs=3,
            transformer=m.TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256,
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )
    return sam.eval()
