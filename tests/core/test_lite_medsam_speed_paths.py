"""LiteMedSAM's fast CPU paths give the plain fp32 model's results (real CT, no timing asserted)."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

import napari_sammed as ns
from napari_sammed.core.engine.lite_medsam_backend import LiteMedSamBackend
from napari_sammed.core.engine.slice_workers import SliceWorkers
from napari_sammed.core.model.tiny_vit import ConvBN, TinyViT, expand_depthwise_project
from tests.conftest import DATA_DEMO, dice

CASES = ("amos_0004_75", "amos_0006_90", "s0619_32")  # two 512 x 512 CT slices, one 225 x 155


@pytest.fixture(scope="module")
def model():
    return ns.load_model(device="cpu")


@pytest.fixture(scope="module")
def engines(model):
    return ns.SliceEngine(model), ns.SliceEngine(LiteMedSamBackend(model, optimized=False))


def _case(name: str) -> tuple[np.ndarray, list[np.ndarray]]:
    image = np.asarray(Image.open(DATA_DEMO / "images" / f"{name}.png").convert("RGB"))
    masks = [np.asarray(Image.open(p)) > 0 for p in sorted((DATA_DEMO / "masks").glob(f"{name}_*.png"))]
    return image, masks


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("height", [37, 64])
def test_banded_blocks_equal_the_whole_image_call(stride, height):
    torch.manual_seed(0)
    convs = [ConvBN(8, 32), ConvBN(32, 32, 3, stride, groups=32), ConvBN(32, 8)]
    for c in convs:
        torch.nn.init.normal_(c.bn.running_mean)
        torch.nn.init.uniform_(c.bn.running_var, 0.5, 2.0)
        c.eval().fold()
    x = torch.randn(2, 8, height, 29)
    residual = stride == 1
    with torch.inference_mode():
        whole = convs[2](torch.nn.functional.gelu(convs[1](torch.nn.functional.gelu(convs[0](x)))))
        if residual:
            whole = torch.nn.functional.gelu(whole + x)
        for rows in (1, 5, 16, 100):
            banded = expand_depthwise_project(x, *convs, rows, residual)
            torch.testing.assert_close(banded, whole, atol=1e-5, rtol=1e-5)


def test_optimised_encoder_matches_the_checkpoint_model(model):
    fast = TinyViT()
    fast.load_state_dict(model.network.image_encoder.state_dict())
    fast.optimize_for_inference().to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 256, 256)
    with torch.inference_mode():
        ref = model.network.image_encoder(x)
        out = fast(x.contiguous(memory_format=torch.channels_last))
    assert float((out - ref).abs().max()) < 1e-4
    # The loaded model is untouched: BatchNorm and the checkpoint's keys are still there.
    assert "layers.0.blocks.0.conv1.bn.running_var" in model.network.image_encoder.state_dict()


def test_fast_engine_embeddings_and_masks_match_the_plain_fp32_path(engines):
    fast, plain = engines
    for name in CASES:
        image, masks = _case(name)
        emb_fast, emb_plain = fast.embed(image[None])[0], plain.embed(image[None])[0]
        assert float((emb_fast - emb_plain).abs().max()) < 1e-4, name
        emb_fp16 = emb_fast.half().float()  # what an fp16 cache stores
        for mask in masks:
            rows, cols = np.nonzero(mask)
            box = np.array([cols.min(), rows.min(), cols.max(), rows.max()], float)
            ref = plain.predict(emb_plain, mask.shape, box=box).mask
            assert dice(fast.predict(emb_fast, mask.shape, box=box).mask, ref) >= 0.99, name
            assert dice(fast.predict(emb_fp16, mask.shape, box=box).mask, ref) >= 0.99, name


def test_fast_engine_batches_like_single_slices(engines):
    fast, _ = engines
    stack = np.stack([_case(name)[0] for name in CASES[:2]])
    together = fast.embed(stack, batch_size=2)
    apart = torch.cat([fast.embed(s[None]) for s in stack])
    assert float((together - apart).abs().max()) < 1e-5


@pytest.mark.parametrize("multimask", [False, True])
def test_token_layout_decoder_equals_segment_anythings(model, multimask):
    fast, plain = LiteMedSamBackend(model), LiteMedSamBackend(model, optimized=False)
    torch.manual_seed(0)
    embedding = torch.randn(1, 256, 64, 64)
    boxes = torch.tensor([[10.0, 20.0, 100.0, 120.0], [60.0, 60.0, 200.0, 180.0]])
    masks = torch.randn(2, 1, 256, 256)
    points, labels = torch.tensor([[[30.0, 40.0], [50.0, 60.0]]] * 2), torch.tensor([[1, 0]] * 2)
    with torch.inference_mode():
        for args in [(None, None, boxes, None), (None, None, boxes, masks), (points, labels, None, None)]:
            ref_low, ref_iou = plain.decode_all(embedding, *args, multimask=multimask)
            low, iou = fast.decode_all(embedding, *args, multimask=multimask)
            assert low.shape == ref_low.shape and iou.shape == ref_iou.shape
            torch.testing.assert_close(low, ref_low, atol=1e-4, rtol=1e-5)
            torch.testing.assert_close(iou, ref_iou, atol=1e-5, rtol=1e-5)


def test_two_slices_in_flight_give_the_sequential_embeddings(model):
    """Each slice gets the embedding it gets alone, in order: bit for bit against one slice at a time
    on the same threads per slice (so the two in flight never disturb each other), and within float
    rounding against one slice on all cores (how a reduction splits across threads depends on the
    CPU: bit-identical on AVX-512, up to 3e-6 apart on AVX2; two slices swapped differ by ~1)."""
    stack = np.stack([_case(name)[0] for name in CASES[:2]] * 2)
    threads = torch.get_num_threads()
    in_flight = LiteMedSamBackend(model)
    if threads < 2:  # a 1-core machine: still run the two-worker path, on one thread each
        in_flight.workers = SliceWorkers(2, threads=2)
    assert in_flight.workers.workers == 2
    together = ns.SliceEngine(in_flight).embed(stack, batch_size=4)
    assert torch.get_num_threads() == threads  # the caller's thread setting is untouched

    one_by_one = LiteMedSamBackend(model)
    one_by_one.workers = SliceWorkers(1)
    torch.set_num_threads(in_flight.workers.threads_each)
    try:
        alone_same_threads = ns.SliceEngine(one_by_one).embed(stack, batch_size=4)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(together, alone_same_threads)
    alone_all_cores = ns.SliceEngine(one_by_one).embed(stack, batch_size=4)
    torch.testing.assert_close(together, alone_all_cores, atol=1e-5, rtol=0)


def test_slice_workers_keep_order_and_split_the_cores():
    workers = SliceWorkers(2, threads=4)
    assert (workers.workers, workers.threads_each) == (2, 2)
    out = workers.map(lambda i: (i, torch.get_num_threads(), threading.current_thread().name), range(6))
    assert [i for i, _, _ in out] == list(range(6))
    assert {n for _, n, _ in out} == {2}
    assert all(name.startswith("napari-sammed-embed") for _, _, name in out)
    assert SliceWorkers(2, threads=1).workers == 1  # one core: no second slice in flight


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_slice_workers_still_work_in_a_forked_child():
    workers = SliceWorkers(2, threads=2)
    assert workers.map(lambda i: i * 2, range(4)) == [0, 2, 4, 6]  # the parent's pool exists now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the inherited pool has no threads; a hang here fails the test
        try:
            ok = workers.map(lambda i: i + 1, range(4)) == [1, 2, 3, 4]
            os.write(write, b"ok" if ok else b"no")
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 60
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the inherited thread pool")
        time.sleep(0.05)
    assert os.read(read, 2) == b"ok"
