"""The SAMAug training benchmark's parts on synthetic data (no LiteMedSAM), so the script cannot rot."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_samaug_training.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_samaug_training", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_unet_forward_backward(bench):
    torch.manual_seed(0)
    net = bench.UNet(base=4, depth=2)
    x = torch.rand(2, 3, 16, 16)
    y = torch.randint(0, bench.N_CLASSES, (2, 16, 16))
    logits = net(x)
    assert logits.shape == (2, bench.N_CLASSES, 16, 16)
    loss = bench.loss_fn(logits, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in net.parameters())


def test_arm_inputs_put_priors_on_channels_1_and_2(bench):
    planes = torch.stack([torch.full((4, 4), 0.5), torch.full((4, 4), 0.25), torch.full((4, 4), 1.0)])[None]
    raw = bench.arm_input(planes, "raw")
    aug = bench.arm_input(planes, "samaug")
    assert torch.equal(raw, torch.full((1, 3, 4, 4), 0.5))
    assert aug[0, :, 0, 0].tolist() == [0.5, 0.75, 1.5]
    with pytest.raises(ValueError):
        bench.arm_input(planes, "nope")


def test_choice_keeps_the_lower_entropy_prediction(bench):
    sure = torch.zeros(1, bench.N_CLASSES, 8, 8)
    sure[:, 1] = 1.0
    unsure = torch.full((1, bench.N_CLASSES, 8, 8), 1.0 / bench.N_CLASSES)
    probs_a = torch.cat([sure, unsure])
    probs_b = torch.cat([unsure, sure * 0.9 + unsure * 0.1])
    chosen, b_wins = bench.choose_by_confidence(probs_a, probs_b)
    assert b_wins.tolist() == [False, True]
    assert torch.equal(chosen[0], probs_a[0]) and torch.equal(chosen[1], probs_b[1])


def test_augmentation_keeps_labels_whole_and_shapes(bench):
    gen = torch.Generator().manual_seed(0)
    planes = torch.rand(3, 3, 16, 16)
    labels = torch.randint(0, bench.N_CLASSES, (3, 16, 16))
    x, y = bench.random_affine(planes, labels, gen)
    x = bench.intensity_jitter(x, gen)
    assert x.shape == planes.shape and y.shape == labels.shape and y.dtype == torch.long
    assert int(y.min()) >= 0 and int(y.max()) < bench.N_CLASSES
    assert float(x[:, 0].min()) >= 0 and float(x[:, 0].max()) <= 1


def test_dice_and_prior_quality(bench):
    ref = np.zeros((20, 20), np.int64)
    ref[5:15, 5:15] = 4  # liver
    sample = bench.Sample(np.zeros((20, 20), np.uint8), ref, "synthetic", (4,))
    mask = ref == 4
    from skimage.segmentation import find_boundaries

    priors = bench.Priors(mask.astype(np.float32), find_boundaries(mask, mode="thick").astype(np.float32),
                          mask[None])
    quality = bench.prior_quality([sample], [priors])
    assert quality[4]["iou"] == 1.0 and quality[4]["recall"] == 1.0
    assert quality[0]["precision"] == 1.0
    assert bench.organ_dice(np.stack([ref]), [sample])[4] == [1.0]
    assert bench.dice(mask, np.zeros_like(mask)) == 0.0
