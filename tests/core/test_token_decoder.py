"""The CPU mask decoder (folded projections, cached image side, matmul upscaling) gives
segment_anything's numbers, and its per-slice cache never serves another slice's values."""

from __future__ import annotations

import pytest
import torch

import napari_sammed as ns
from napari_sammed.core.engine.token_decoder import TokenDecoder, upscaled_masks, upscaling_as_matmuls


@pytest.fixture(scope="module")
def model():
    return ns.load_model(device="cpu").network


def reference(model, embedding, boxes=None, points=None, masks=None, multimask=False):
    sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=masks)
    return model.mask_decoder(image_embeddings=embedding, image_pe=model.prompt_encoder.get_dense_pe(),
                              sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                              multimask_output=multimask)


def ours(decoder, model, embedding, boxes=None, points=None, masks=None, multimask=False):
    sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=masks)
    return decoder(embedding, sparse, None if masks is None else dense, multimask)


def assert_same(got, want):
    (low, iou), (ref_low, ref_iou) = got, want
    assert low.shape == ref_low.shape and iou.shape == ref_iou.shape
    torch.testing.assert_close(low, ref_low, atol=2e-4, rtol=1e-5)
    torch.testing.assert_close(iou, ref_iou, atol=1e-5, rtol=1e-5)


def test_each_prompt_kind_and_batch_size_matches_segment_anything(model):
    decoder = TokenDecoder(model.prompt_encoder, model.mask_decoder)
    torch.manual_seed(1)
    embedding = torch.randn(1, 256, 64, 64)
    boxes = torch.tensor([[10.0, 20.0, 100.0, 120.0], [60.0, 60.0, 200.0, 180.0], [0.0, 0.0, 255.0, 255.0]])
    points = (torch.tensor([[[30.0, 40.0], [50.0, 60.0], [200.0, 10.0]]] * 3), torch.tensor([[1, 0, 1]] * 3))
    with torch.no_grad():
        for multimask in (False, True):
            for n in (1, 3):  # one prompt, and several in one call (shared cached image side)
                kinds = [dict(boxes=boxes[:n]), dict(points=(points[0][:n], points[1][:n])),
                         dict(boxes=boxes[:n], masks=torch.randn(n, 1, 256, 256))]
                for kind in kinds:
                    assert_same(ours(decoder, model, embedding, multimask=multimask, **kind),
                                reference(model, embedding, multimask=multimask, **kind))


def test_cached_image_side_is_never_another_slices(model):
    decoder = TokenDecoder(model.prompt_encoder, model.mask_decoder)
    torch.manual_seed(2)
    a, b = torch.randn(1, 256, 64, 64), torch.randn(1, 256, 64, 64)
    box = torch.tensor([[40.0, 50.0, 150.0, 160.0]])
    with torch.no_grad():
        ours(decoder, model, a, boxes=box)
        side_a = decoder.image_side(a)
        assert decoder.image_side(a[:1]) is side_a  # a view of the same memory: a hit
        assert decoder.image_side(a.clone()) is side_a  # equal values elsewhere: a hit
        assert_same(ours(decoder, model, b, boxes=box), reference(model, b, boxes=box))  # a miss
        assert decoder.image_side(b) is not side_a
        b.mul_(0.5)  # written in place: the cached side must not be reused
        assert_same(ours(decoder, model, b, boxes=box), reference(model, b, boxes=box))
    with torch.inference_mode():  # inference tensors have no version counter
        c = torch.randn(1, 256, 64, 64)
        assert_same(ours(decoder, model, c, boxes=box), reference(model, c, boxes=box))
        assert_same(ours(decoder, model, a, boxes=box), reference(model, a, boxes=box))


@pytest.mark.parametrize("chunk", [1000, 4096])
def test_upscaling_as_matmuls_equals_the_transposed_convs(model, chunk):
    upscaling = model.mask_decoder.output_upscaling
    torch.manual_seed(3)
    tokens, hyper_in = torch.randn(2, 64 * 64, 256), torch.randn(2, 3, 32)
    with torch.no_grad():
        image = tokens.transpose(1, 2).reshape(2, 256, 64, 64)
        up = upscaling(image)  # (2, 32, 256, 256)
        want = (hyper_in @ up.flatten(2)).view(2, 3, 256, 256)
        got = upscaled_masks(upscaling, upscaling_as_matmuls(upscaling), tokens, hyper_in, chunk=chunk)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
