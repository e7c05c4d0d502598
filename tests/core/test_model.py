"""SAM-Med2D structure: official key names and shapes, adapter maths, block wiring."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from napari_sammed.core.model import sam_import
from napari_sammed.core.model.build import build_sam_vit
from napari_sammed.core.model.sam_med2d import Adapter, AdapterBlock
from napari_sammed.core.model.specs import VIT_SPECS


@pytest.fixture(scope="module")
def full_state_shapes():
    model = build_sam_vit(VIT_SPECS["sam-med2d"], device="meta")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}, model


def test_official_adapter_keys_and_shapes(full_state_shapes):
    shapes, _ = full_state_shapes
    adapter_keys = sorted(k for k in shapes if ".Adapter." in k)
    assert len(adapter_keys) == 72
    for i in range(12):
        p = f"image_encoder.blocks.{i}.Adapter."
        assert shapes[p + "channel.0.weight"] == (192, 768)
        assert shapes[p + "channel.2.weight"] == (768, 192)
        assert shapes[p + "spatial.0.weight"] == (768, 768, 3, 3)
        assert shapes[p + "spatial.2.weight"] == (768, 768, 4, 4)
        assert shapes[p + "norm.weight"] == (768,)
        assert shapes[p + "norm.bias"] == (768,)
    assert shapes["image_encoder.pos_embed"] == (1, 16, 16, 768)
    for i in range(12):
        expected = (31, 64) if i in (2, 5, 8, 11) else (27, 64)
        assert shapes[f"image_encoder.blocks.{i}.attn.rel_pos_h"] == expected
        assert shapes[f"image_encoder.blocks.{i}.attn.rel_pos_w"] == expected
    assert shapes["image_encoder.neck.0.weight"] == (256, 768, 1, 1)
    assert shapes["image_encoder.neck.2.weight"] == (256, 256, 3, 3)
    assert shapes["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] == (2, 128)
    assert shapes["prompt_encoder.mask_downscaling.0.weight"] == (4, 1, 2, 2)


def test_parameter_counts_match_the_release(full_state_shapes):
    shapes, _ = full_state_shapes
    total = sum(torch.Size(s).numel() for s in shapes.values())
    adapters = sum(torch.Size(s).numel() for k, s in shapes.items() if ".Adapter." in k)
    assert 270e6 < total < 272e6
    assert 179e6 < adapters < 181e6


def test_norm_eps(full_state_shapes):
    _, model = full_state_shapes
    block = model.image_encoder.blocks[0]
    assert block.norm1.eps == 1e-6 and block.norm2.eps == 1e-6
    assert block.Adapter.norm.eps == 1e-5
    assert [i for i, b in enumerate(model.image_encoder.blocks) if b.window_size == 0] == [2, 5, 8, 11]
    assert all(b.window_size == 14 for i, b in enumerate(model.image_encoder.blocks) if i not in (2, 5, 8, 11))


def _reference_adapter(adapter: Adapter, x: torch.Tensor) -> torch.Tensor:
    """The adapter as the design notes spell it, written out independently."""
    h = x.permute(0, 3, 1, 2)
    pooled = h.mean(dim=(2, 3))
    w1, w2 = adapter.channel[0].weight, adapter.channel[2].weight
    gate = torch.sigmoid(torch.relu(pooled @ w1.T) @ w2.T)
    g = h * gate[:, :, None, None]
    s = torch.relu(nn.functional.conv2d(g, adapter.spatial[0].weight, stride=2, padding=1))
    s = torch.relu(nn.functional.conv_transpose2d(s, adapter.spatial[2].weight, stride=2, padding=1))
    out = (h + s).permute(0, 2, 3, 1)
    return nn.functional.layer_norm(out, (out.shape[-1],), adapter.norm.weight, adapter.norm.bias, eps=1e-5)


def test_adapter_matches_independent_formula():
    torch.manual_seed(1)
    adapter = Adapter(32)
    for p in adapter.parameters():
        nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 16, 16, 32)
    torch.testing.assert_close(adapter(x), _reference_adapter(adapter, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("window", [0, 14])
def test_block_wiring_feeds_norm2_to_mlp_and_adapter(window):
    torch.manual_seed(2)
    block = AdapterBlock(32, num_heads=2, window_size=window, input_size=(16, 16), use_rel_pos=True,
                         norm_layer=lambda d: nn.LayerNorm(d, eps=1e-6))
    for p in block.parameters():
        nn.init.normal_(p, std=0.1)
    x = torch.randn(1, 16, 16, 32)
    vit = sam_import.image_encoder()
    # Independent composition: attention branch exactly as SAM's Block, then
    # x + mlp(norm2(x)) + Adapter(norm2(x)).
    y = block.norm1(x)
    if window:
        y, pad = vit.window_partition(y, window)
    y = block.attn(y)
    if window:
        y = vit.window_unpartition(y, window, pad, (16, 16))
    y = x + y
    n = nn.functional.layer_norm(y, (32,), block.norm2.weight, block.norm2.bias, eps=1e-6)
    expected = y + block.mlp(n) + _reference_adapter(block.Adapter, n)
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)


def test_encoder_output_is_16x16x256():
    from tests.conftest import SMALL_SPEC

    model = build_sam_vit(SMALL_SPEC)
    with torch.no_grad():
        out = model.image_encoder(torch.randn(2, 3, 256, 256))
    assert out.shape == (2, 256, 16, 16)


def test_segment_anything_imports_without_torchvision():
    # A fresh interpreter in which importing torchvision fails, as on machines without it.
    code = (
        "import sys; sys.modules['torchvision'] = None\n"
        "from napari_sammed.core.model import sam_import\n"
        "assert sam_import.modeling().Sam.__name__ == 'Sam'\n"
        "assert callable(sam_import.amg().calculate_stability_score)\n"
        "import napari_sammed as ns; ns.load_model(None)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
