"""TinyViT image encoder as used by LiteMedSAM (inference only).

Maps a (B, 3, 256, 256) float image (values in [0, 1]) to a (B, 256, 64, 64)
embedding for the SAM mask decoder. Module and parameter names follow the
LiteMedSAM checkpoint (``image_encoder.*`` keys), so its weights load with
``strict=True``.

Layout: a stride-1 patch embedding (two 1x1 Conv+BN), a convolutional stage of
MBConv blocks at full resolution, three windowed-attention stages, each stage
except the last ending in a patch-merging downsample, and a SAM-style neck.

Building on the meta device is supported: the only non-persistent buffers,
``attention_bias_idxs``, are recomputed by a load_state_dict post-hook (so
``load_state_dict(sd, assign=True)`` restores them) and by ``reset_buffers()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvBN(nn.Sequential):
    """Bias-free Conv2d followed by BatchNorm2d ("same" padding)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.c = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    @torch.no_grad()
    def fold(self) -> None:
        """Fold the BatchNorm (running statistics) into the conv: one op instead of two.

        Inference only; the state dict no longer matches the checkpoint's keys afterwards.
        """
        if isinstance(self.bn, nn.Identity):
            return
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv = self.c
        folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                           groups=conv.groups, bias=True, device=conv.weight.device, dtype=conv.weight.dtype)
        folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        folded.bias.copy_(bn.bias - bn.running_mean * scale)
        self.c, self.bn = folded, nn.Identity()


class PatchEmbed(nn.Module):
    """Pointwise stem: Conv+BN, GELU, Conv+BN (no spatial downsampling)."""

    def __init__(self, cin: int, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(ConvBN(cin, dim // 2), nn.GELU(), ConvBN(dim // 2, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block: expand 1x1, depthwise 3x3, project 1x1, residual, GELU."""

    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, groups=hidden)
        self.conv3 = ConvBN(hidden, dim)
        self.band_rows: int | None = None  # set by TinyViT.optimize_for_inference()

    def forward(self, x: Tensor) -> Tensor:
        if self.band_rows:
            return expand_depthwise_project(x, self.conv1, self.conv2, self.conv3, self.band_rows, residual=True)
        y = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return F.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """Channel change plus optional 2x downsampling via a strided depthwise conv (NCHW)."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)
        self.band_rows: int | None = None  # set by TinyViT.optimize_for_inference()

    def forward(self, x: Tensor) -> Tensor:
        if self.band_rows:
            return expand_depthwise_project(x, self.conv1, self.conv2, self.conv3, self.band_rows, residual=False)
        return self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x)))))


def expand_depthwise_project(
    x: Tensor, conv1: ConvBN, conv2: ConvBN, conv3: ConvBN, rows: int, residual: bool
) -> Tensor:
    """``conv3(gelu(conv2(gelu(conv1(x)))))`` (plus ``x`` and a GELU if ``residual``), computed
    in bands of ``rows`` output rows; the same numbers as the whole-image call.

    Why: at 256 x 256 the expanded tensors are 32-67 MB per slice. Allocations that large are
    fresh mmaps in glibc, and first-touching their pages costs as much as the arithmetic (timings
    in docs/benchmarks.md). Bands of a few MB are
    recycled by the allocator, stay warmer in cache and let the activations run in place.
    ``conv1``/``conv3`` are pointwise; ``conv2`` is the 3x3 depthwise conv (stride 1 or 2), so a
    band reads one halo row of the expanded tensor on each side, zero-padded at the image edge.
    """
    dw = conv2.c
    stride, height = dw.stride[0], x.shape[2]
    out_rows = (height - 1) // stride + 1
    gelu_ = torch.ops.aten.gelu_
    bands = []
    for o0 in range(0, out_rows, rows):
        o1 = min(o0 + rows, out_rows)
        first, last = o0 * stride - 1, (o1 - 1) * stride + 1  # input rows the 3x3 window needs
        a, b = max(first, 0), min(last + 1, height)
        h = gelu_(conv1(x[:, :, a:b]))
        if a != first or b != last + 1:  # zero rows where the band meets the image edge
            h = F.pad(h, (0, 0, a - first, last + 1 - b))
        h = gelu_(conv2.bn(F.conv2d(h, dw.weight, dw.bias, dw.stride, (0, dw.padding[1]), groups=dw.groups)))
        y = conv3(h)
        bands.append(gelu_(y.add_(x[:, :, o0:o1])) if residual else y)
    return torch.cat(bands, dim=2)


def relative_offset_index(window: int, device: torch.device | str | None = None) -> Tensor:
    """(N, N) index, N = window**2, of the offset (|dy|, |dx|) between two tokens of a window."""
    r = torch.arange(window, device=device)
    ys, xs = r.repeat_interleave(window), r.repeat(window)
    return (ys[:, None] - ys[None, :]).abs() * window + (xs[:, None] - xs[None, :]).abs()


class Attention(nn.Module):
    """Pre-norm multi-head self-attention within a window, with a learned offset bias."""

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        # One bias per head and per offset (|dy|, |dx|): window**2 distinct offsets.
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window * window))
        self.register_buffer("attention_bias_idxs", relative_offset_index(window), persistent=False)
        # (1, heads, N, N), set by freeze_bias() for inference; a buffer so .to() moves it.
        self.register_buffer("frozen_bias", None, persistent=False)

    def reset_bias_idxs(self) -> None:
        """Recompute the non-persistent index buffer on the parameters' device."""
        self.attention_bias_idxs = relative_offset_index(self.window, self.attention_biases.device)

    def bias(self) -> Tensor:
        """(heads, N, N) additive attention bias gathered from the learned per-offset table."""
        return self.attention_biases[:, self.attention_bias_idxs]

    @torch.no_grad()
    def freeze_bias(self) -> None:
        """Gather the bias table once (inference), as (1, heads, N, N): saves a gather per call,
        and with a 4-D mask SDPA takes its fused CPU kernel, faster than the 3-D mask's unfused
        path and than matmul + softmax (timings in docs/benchmarks.md)."""
        self.frozen_bias = self.bias().detach()[None].contiguous()

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, N, C) tokens of B windows, N = window**2."""
        b, n, c = x.shape
        # The checkpoint packs q, k, v per head: (..., heads, [q | k | v]).
        qkv = self.qkv(self.norm(x)).view(b, n, self.num_heads, -1).transpose(1, 2)
        q, k, v = qkv.chunk(3, dim=-1)
        bias = self.bias() if self.frozen_bias is None else self.frozen_bias
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Pre-norm two-layer MLP with GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.fc1(self.norm(x))
        # Without autograd, GELU in place: no second 8-34 MB temporary per block.
        hidden = F.gelu(hidden) if torch.is_grad_enabled() else torch.ops.aten.gelu_(hidden)
        return self.fc2(hidden)


class TinyViTBlock(nn.Module):
    """Window attention (residual), depthwise local conv, MLP (residual). Works on (B, H, W, C)."""

    def __init__(self, dim: int, num_heads: int, window: int, mlp_ratio: float, local_conv_size: int) -> None:
        super().__init__()
        self.window = window
        self.attn = Attention(dim, num_heads, window)
        self.local_conv = ConvBN(dim, dim, local_conv_size, groups=dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def window_attention(self, x: Tensor) -> Tensor:
        b, h, w, c = x.shape
        s = self.window
        pad_h, pad_w = -h % s, -w % s
        # Zero padding is NOT masked out: padded tokens (LayerNorm'ed zeros) act as
        # keys/values, exactly as in the original model.
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        nh, nw = (h + pad_h) // s, (w + pad_w) // s
        win = x.view(b, nh, s, nw, s, c).transpose(2, 3).reshape(-1, s * s, c)
        win = self.attn(win)
        x = win.view(b, nh, nw, s, s, c).transpose(2, 3).reshape(b, nh * s, nw * s, c)
        return x[:, :h, :w]

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.window_attention(x)
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.mlp(x)


class Stage(nn.Module):
    """A sequence of blocks plus an optional downsample. Input and output are NCHW."""

    def __init__(self, blocks: Sequence[nn.Module], downsample: nn.Module | None, channels_last_blocks: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample
        self.channels_last_blocks = channels_last_blocks

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last_blocks:
            x = x.permute(0, 2, 3, 1)
        for block in self.blocks:
            x = block(x)
        if self.channels_last_blocks:
            x = x.permute(0, 3, 1, 2)
        return x if self.downsample is None else self.downsample(x)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NCHW tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class TinyViT(nn.Module):
    """LiteMedSAM image encoder: (B, in_chans, H, W) -> (B, out_chans, H/4, W/4).

    ``merge_strides[i]`` is the stride of the downsample after stage i; the
    LiteMedSAM model does not downsample into the last stage. The module starts
    in eval mode (BatchNorm must use its running statistics).
    """

    def __init__(
        self,
        img_size: int = 256,
        in_chans: int = 3,
        embed_dims: Sequence[int] = (64, 128, 160, 320),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (2, 4, 5, 10),
        window_sizes: Sequence[int] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        mbconv_expand_ratio: float = 4.0,
        local_conv_size: int = 3,
        merge_strides: Sequence[int] = (2, 2, 1),
        out_chans: int = 256,
    ) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])
        self.layers = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(embed_dims, depths, strict=True)):
            if i == 0:
                blocks: list[nn.Module] = [MBConv(dim, mbconv_expand_ratio) for _ in range(depth)]
            else:
                blocks = [
                    TinyViTBlock(dim, num_heads[i], window_sizes[i], mlp_ratio, local_conv_size)
                    for _ in range(depth)
                ]
            last = i == len(embed_dims) - 1
            down = None if last else PatchMerging(dim, embed_dims[i + 1], merge_strides[i])
            self.layers.append(Stage(blocks, down, channels_last_blocks=i > 0))
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_chans, 1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )
        # Keeps index buffers valid after load_state_dict(..., assign=True) from a meta build.
        self.register_load_state_dict_post_hook(lambda module, _keys: module.reset_buffers())
        self.eval()

    def reset_buffers(self) -> None:
        """Recompute all non-persistent buffers (``attention_bias_idxs``), e.g. after a meta build."""
        for m in self.modules():
            if isinstance(m, Attention):
                m.reset_bias_idxs()

    def optimize_for_inference(self, band_rows: int | None = 16) -> TinyViT:
        """Fold every BatchNorm into its conv, gather the attention biases once, and run the
        full-resolution conv blocks in bands of ``band_rows`` rows, in place.

        The outputs stay those of the checkpoint's model within float rounding (tested), but the
        state dict no longer has the checkpoint's keys: apply it to a copy used only to embed.
        """
        for m in self.modules():
            if isinstance(m, ConvBN):
                m.fold()
            elif isinstance(m, Attention):
                m.freeze_bias()
        for m in [*self.layers[0].blocks, self.layers[0].downsample]:
            m.band_rows = band_rows
        return self.eval()

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.neck(x)
