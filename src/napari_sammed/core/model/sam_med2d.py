"""SAM-Med2D image encoder: SAM's ViT with an ``Adapter`` in every block.

Built on the unmodified ``segment_anything.modeling`` modules; only the adapter and the block
wiring that feeds it are ours. Layout and state-dict keys follow the official SAM-Med2D
release (``image_encoder.blocks.{i}.Adapter.{norm,channel.0,channel.2,spatial.0,spatial.2}``).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .sam_import import image_encoder

_vit = image_encoder()


class Adapter(nn.Module):
    """Channel gate + spatial bottleneck applied to ``norm2(x)``; input and output (B, H, W, C)."""

    def __init__(self, dim: int, reduction: int = 4) -> None:
        super().__init__()
        self.channel = nn.Sequential(
            nn.Linear(dim, dim // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(dim // reduction, dim, bias=False),
            nn.Sigmoid(),
        )
        self.spatial = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=3, stride=2, padding=1, bias=False),
            nn.ReLU(),
            nn.ConvTranspose2d(dim, dim, kernel_size=4, stride=2, padding=1, bias=False),
            nn.ReLU(),
        )
        self.norm = nn.LayerNorm(dim)  # eps 1e-5, unlike the ViT's 1e-6 norms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.permute(0, 3, 1, 2)
        gate = self.channel(h.mean(dim=(2, 3)))
        gated = h * gate[:, :, None, None]
        out = h + self.spatial(gated)
        return self.norm(out.permute(0, 2, 3, 1))


class AdapterBlock(_vit.Block):
    """SAM ViT block whose MLP branch is joined by an adapter on the same normalised input."""

    def __init__(self, dim: int, **kwargs) -> None:
        super().__init__(dim, **kwargs)
        self.Adapter = Adapter(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            height, width = x.shape[1], x.shape[2]
            x, pad_hw = _vit.window_partition(x, self.window_size)
        x = self.attn(x)
        if self.window_size > 0:
            x = _vit.window_unpartition(x, self.window_size, pad_hw, (height, width))
        x = shortcut + x
        normed = self.norm2(x)
        return x + self.mlp(normed) + self.Adapter(normed)


class AdapterImageEncoderViT(_vit.ImageEncoderViT):
    """``ImageEncoderViT`` whose blocks are :class:`AdapterBlock` (SAM-Med2D)."""

    def __init__(
        self,
        img_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        global_attn_indexes: tuple[int, ...],
        window_size: int = 14,
        patch_size: int = 16,
        out_chans: int = 256,
    ) -> None:
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        super().__init__(
            img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=0,
            num_heads=num_heads, mlp_ratio=4, out_chans=out_chans, qkv_bias=True,
            norm_layer=norm_layer, use_rel_pos=True, window_size=window_size,
            global_attn_indexes=global_attn_indexes,
        )
        grid = img_size // patch_size
        for i in range(depth):
            self.blocks.append(
                AdapterBlock(
                    embed_dim, num_heads=num_heads, mlp_ratio=4, qkv_bias=True,
                    norm_layer=norm_layer, use_rel_pos=True,
                    window_size=0 if i in global_attn_indexes else window_size,
                    input_size=(grid, grid),
                )
            )
