"""SAMAug prior maps and automatic masks."""

import numpy as np
import pytest
import torch
from skimage.segmentation import find_boundaries

import napari_sammed as ns
from napari_sammed import samaug
from napari_sammed.core.engine.automatic_masks import (
    AmgSettings,
    automatic_masks,
    box_nms,
    filter_masks,
    nms_masks,
)
from napari_sammed.core.io.windowing import Window, resolve_window


def square(shape, r0, r1, c0, c1):
    m = np.zeros(shape, bool)
    m[r0:r1, c0:c1] = True
    return m


def test_prior_maps_sum_overlaps_and_boundaries():
    a = square((10, 12), 1, 6, 1, 6)
    b = square((10, 12), 4, 9, 4, 11)
    seg, bnd = samaug.prior_maps(np.stack([a, b]), np.array([0.96, 0.5]))
    assert seg.dtype == np.float32 and bnd.dtype == np.float32
    expected = np.zeros((10, 12), np.float32)
    expected[a] += 0.96
    expected[b] += 0.5
    assert np.array_equal(seg, expected)
    assert seg[5, 5] == pytest.approx(1.46) and seg[0, 0] == 0 and seg[8, 10] == pytest.approx(0.5)
    expected_b = (find_boundaries(a, mode="thick") | find_boundaries(b, mode="thick")).astype(np.float32)
    assert np.array_equal(bnd, expected_b)
    assert set(np.unique(bnd)) == {0.0, 1.0}


def test_empty_mask_list_gives_zeros():
    seg, bnd = samaug.prior_maps(np.zeros((0, 7, 5), bool), np.zeros(0))
    assert seg.shape == (7, 5) and not seg.any() and not bnd.any()
    aug = samaug.augment_image(np.full((7, 5), 255, np.uint8), seg, bnd)
    assert aug.shape == (7, 5, 3) and np.all(aug == 1.0)


def test_augment_image_channels_and_dtypes():
    seg = np.zeros((4, 4), np.float32)
    seg[1, 1] = 0.97
    bnd = np.zeros((4, 4), np.float32)
    bnd[2, 2] = 1
    u8 = np.full((4, 4), 51, np.uint8)
    aug = samaug.augment_image(u8, seg, bnd)
    assert aug.dtype == np.float32
    assert aug[0, 0].tolist() == pytest.approx([0.2, 0.2, 0.2])
    assert aug[1, 1].tolist() == pytest.approx([0.2, 1.17, 0.2])
    assert aug[2, 2].tolist() == pytest.approx([0.2, 0.2, 1.2])
    u16 = np.full((4, 4), 65535, np.uint16)
    assert samaug.augment_image(u16, seg, bnd)[0, 0, 0] == pytest.approx(1.0)
    hu = np.full((4, 4), 40, np.int16)  # soft-tissue level -> mid grey
    got = samaug.augment_image(hu, seg, bnd, Window.from_width_level(400, 40))
    assert got[0, 0, 0] == pytest.approx(128 / 255)
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    assert samaug.augment_image(rgb, seg, bnd)[0, 0].tolist() == pytest.approx([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="differ"):
        samaug.augment_image(u8, seg[:3], bnd)
    with pytest.raises(ValueError, match="stability scores"):
        samaug.prior_maps(np.zeros((2, 4, 4), bool), np.zeros(3))


def test_filters_and_nms_on_crafted_logits():
    settings = AmgSettings(pred_iou_thresh=0.5, stability_score_thresh=0.95, box_nms_thresh=0.5)
    logits = torch.full((4, 32, 32), -20.0)
    logits[0, 4:20, 4:20] = 20.0  # crisp: stable
    logits[1, 5:21, 5:21] = 20.0  # crisp, overlaps 0 heavily -> NMS keeps the higher IoU
    ramp = torch.linspace(-3, 3, 32)
    logits[2] = ramp[None, :].expand(32, 32)  # soft edge: unstable
    logits[3, 24:30, 24:30] = 20.0  # crisp but low predicted IoU
    ious = torch.tensor([0.9, 0.95, 0.9, 0.3])
    idx, stability = filter_masks(logits, ious, settings)
    assert idx.tolist() == [0, 1]
    assert torch.all(stability == 1.0)
    kept = nms_masks(logits[idx], ious[idx], settings.box_nms_thresh)
    assert idx[kept].tolist() == [1]


def test_box_nms_matches_definition():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 4]], dtype=torch.float)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert box_nms(boxes, scores, 0.5).tolist() == [3, 0, 2]


def test_automatic_masks_random_init_sam_med2d(small_checkpoint, ct_volume):
    engine = ns.SliceEngine(ns.load_model(small_checkpoint, device="cpu"))
    image = ns.to_uint8(ct_volume[15], "ct-soft-tissue")
    emb = engine.embed(image)[0]
    lax = AmgSettings(points_per_side=4, pred_iou_thresh=-10.0, stability_score_thresh=-1.0, box_nms_thresh=1.0)
    auto = automatic_masks(engine, emb, image.shape, lax)
    assert auto.masks.shape[1:] == image.shape and auto.masks.dtype == bool
    assert len(auto.masks) == len(auto.stability_scores) == len(auto.predicted_ious)
    assert 0 < len(auto.masks) <= 48  # 16 points x 3 outputs, minus empty masks
    strict = automatic_masks(engine, emb, image.shape, AmgSettings(points_per_side=4, pred_iou_thresh=1.1))
    assert len(strict.masks) == 0


def test_weight_free_stand_in_on_real_ct(ct_volume):
    engine = ns.SliceEngine(ns.load_model(kind="weight-free"))
    window = resolve_window(ct_volume, "ct-soft-tissue")
    result = samaug.samaug_slice(engine, ct_volume[15], window)
    assert "weight-free" in result.masks.method
    assert len(result.masks.masks) > 5
    assert result.seg_prior.shape == ct_volume.shape[1:]
    assert 0 < result.boundary_prior.mean() < 1
    assert result.augmented.shape == (*ct_volume.shape[1:], 3)
    seg, bnd = samaug.prior_maps(result.masks.masks, result.masks.stability_scores)
    assert np.array_equal(seg, result.seg_prior)


def test_samaug_cli_folder_and_volume_resume(tmp_path, ct_volume):
    from skimage import io as skio

    from napari_sammed.cli import main
    from tests.conftest import PACKAGE_DATA

    folder = tmp_path / "pngs"
    folder.mkdir()
    for z in (10, 15):
        skio.imsave(folder / f"ct_{z}.png", ns.to_uint8(ct_volume[z], "ct-soft-tissue"), check_contrast=False)
    out = tmp_path / "out"
    assert main(["samaug", str(folder), str(out), "--kind", "weight-free"]) == 0
    produced = sorted(p.name for p in out.iterdir())
    for z in (10, 15):
        for suffix in ("seg_prior.tif", "boundary_prior.tif", "augmented.tif", "augmented.png", "samaug.json"):
            assert f"ct_{z}_{suffix}" in produced
    stamp = (out / "ct_10_seg_prior.tif").stat().st_mtime_ns
    assert main(["samaug", str(folder), str(out), "--kind", "weight-free"]) == 0
    assert (out / "ct_10_seg_prior.tif").stat().st_mtime_ns == stamp  # skipped on rerun

    import tifffile

    vol_out = tmp_path / "vol"
    assert main(["samaug", str(PACKAGE_DATA / "example_mr_sm.nii.gz"), str(vol_out), "--window", "percentile",
                 "--kind", "weight-free"]) == 0
    aug = tifffile.imread(vol_out / "example_mr_sm_augmented.tif")
    assert aug.shape == (20, 91, 117, 3)
    assert main(["samaug", str(tmp_path / "missing"), str(vol_out)]) == 2
