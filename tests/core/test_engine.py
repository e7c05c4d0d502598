"""SliceEngine: fidelity to the official SAM-Med2D predictor, batching, precision, weight-free."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import napari_sammed as ns
from napari_sammed.core.engine.slice_engine import Prompt
from napari_sammed.core.io.windowing import to_uint8
from tests.conftest import bbox_xyxy, dice, middle_slice


@pytest.fixture(scope="module")
def small_model(small_checkpoint):
    return ns.load_model(small_checkpoint, device="cpu", dtype=torch.float32)


def official_predict(model, image_rgb, points=None, labels=None, box=None, mask_input=None):
    """SAM-Med2D's predictor, re-derived from its description (numpy + cv2 nearest indexing)."""
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)
    h, w = image_rgb.shape[:2]
    normalised = (image_rgb - mean) / std  # float32 at original size
    # cv2.resize(..., INTER_NEAREST): src = floor(dst * (src_size / dst_size))
    ys = [min(int(np.floor(i * (h / 256))), h - 1) for i in range(256)]
    xs = [min(int(np.floor(j * (w / 256))), w - 1) for j in range(256)]
    resized = normalised[np.ix_(ys, xs)]
    x = torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1)))[None]
    with torch.no_grad():
        features = model.image_encoder(x)
        pts = None
        if points is not None:
            c = np.array(points, float).copy()
            c[:, 0] *= 256 / w
            c[:, 1] *= 256 / h
            pts = (torch.tensor(c, dtype=torch.float)[None], torch.tensor(labels, dtype=torch.int)[None])
        bx = None
        if box is not None:
            b = np.array(box, float).reshape(2, 2)
            b[:, 0] *= 256 / w
            b[:, 1] *= 256 / h
            bx = torch.tensor(b.reshape(1, 4), dtype=torch.float)
        mk = None if mask_input is None else torch.tensor(mask_input, dtype=torch.float)[None]
        sparse, dense = model.prompt_encoder(points=pts, boxes=bx, masks=mk)
        low, iou = model.mask_decoder(image_embeddings=features, image_pe=model.prompt_encoder.get_dense_pe(),
                                      sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                      multimask_output=True)
        best = int(torch.argmax(iou[0]))
        low = low[:, best : best + 1]
        up = F.interpolate(low, (256, 256), mode="bilinear", align_corners=False)
        up = F.interpolate(up, (h, w), mode="bilinear", align_corners=False)
    return up[0, 0].numpy(), float(iou[0, best]), low[0].numpy()


@pytest.fixture(scope="module")
def ct_slices(ct_volume):
    return to_uint8(ct_volume[[8, 15, 22]], "ct-soft-tissue")


def test_matches_official_procedure(small_model, ct_slices):
    engine = ns.SliceEngine(small_model)
    slice_ = ct_slices[1]
    rgb = np.repeat(slice_[..., None], 3, -1)
    h, w = slice_.shape
    emb = engine.embed(slice_[None])
    pts, lab = np.array([[60.0, 40.0], [30.5, 70.2]]), np.array([1, 0])
    box = np.array([20.0, 15.0, 90.0, 80.0])
    ref_logits, ref_iou, ref_low = official_predict(small_model.network, rgb, pts, lab, box)
    pred = engine.predict(emb[0], (h, w), points=pts, point_labels=lab, box=box)
    assert pred.logits.shape == (h, w) and pred.mask.dtype == bool
    assert np.abs(pred.logits - ref_logits).max() <= 1e-4
    assert np.array_equal(pred.mask, ref_logits > 0)
    assert abs(pred.iou - ref_iou) <= 1e-5
    # iterative refinement: previous low-res logits go back in as the mask prompt
    ref2, _, _ = official_predict(small_model.network, rgb, pts, lab, None, ref_low)
    pred2 = engine.predict(emb[0], (h, w), points=pts, point_labels=lab, mask_input=pred.low_res_logits)
    assert pred.low_res_logits.shape == (1, 64, 64)
    assert np.abs(pred2.logits - ref2).max() <= 1e-4


def test_rgb_input_and_grey_input_agree(small_model, ct_slices):
    engine = ns.SliceEngine(small_model)
    rgb = np.repeat(ct_slices[..., None], 3, -1)
    torch.testing.assert_close(engine.embed(rgb), engine.embed(ct_slices))


def test_batched_embedding_equals_one_at_a_time(small_model, ct_slices):
    batched = ns.SliceEngine(small_model, batch_size=3).embed(ct_slices)
    single = torch.cat([ns.SliceEngine(small_model).embed(s) for s in ct_slices])
    assert batched.shape == (3, 256, 16, 16)
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


def test_predict_batch_equals_separate_calls(small_model, ct_slices):
    engine = ns.SliceEngine(small_model)
    emb = engine.embed(ct_slices[1])[0]
    size = ct_slices[1].shape
    prompts = [
        Prompt(box=np.array([10, 10, 50, 60])),
        Prompt(points=np.array([[40, 40]]), point_labels=np.array([1])),
        Prompt(box=np.array([50, 20, 100, 90])),
        Prompt(points=np.array([[70, 50]]), point_labels=np.array([1]), box=np.array([40, 30, 110, 95])),
    ]
    together = engine.predict_batch(emb, size, prompts)
    for prompt, result in zip(prompts, together, strict=True):
        alone = engine.predict(emb, size, prompt.points, prompt.point_labels, prompt.box)
        assert np.abs(alone.logits - result.logits).max() <= 1e-4
        assert abs(alone.iou - result.iou) <= 1e-5


def test_bf16_masks_agree_with_fp32(small_checkpoint, ct_volume, ct_labels):
    fp32 = ns.SliceEngine(ns.load_model(small_checkpoint, device="cpu", dtype=torch.float32))
    bf16 = ns.SliceEngine(ns.load_model(small_checkpoint, device="cpu", dtype="bf16"))
    scores = []
    for label in (5, 1, 2, 3):
        z = middle_slice(ct_labels, label)
        image = to_uint8(ct_volume[z], "ct-soft-tissue")
        box = bbox_xyxy(ct_labels[z] == label)
        a = fp32.predict(fp32.embed(image)[0], image.shape, box=box)
        b = bf16.predict(bf16.embed(image)[0], image.shape, box=box)
        if a.mask.any() or b.mask.any():
            scores.append(dice(a.mask, b.mask))
    assert scores and min(scores) >= 0.99, scores


def test_uint8_is_required(small_model, ct_volume):
    with pytest.raises(ValueError, match="window them first"):
        ns.SliceEngine(small_model).embed(ct_volume[0])
    with pytest.raises(ValueError, match="box must be"):
        Prompt(box=np.array([5, 5, 1, 1]))
    with pytest.raises(ValueError, match="needs points, a box or a mask"):
        Prompt()


def test_weight_free_engine_liver_box(ct_volume, ct_labels):
    model = ns.load_model(kind="weight-free")
    engine = ns.SliceEngine(model)
    assert "weight-free" in engine.describe()["kind"] and "no neural network" in engine.describe()["label"]
    z = middle_slice(ct_labels, 5)
    image = to_uint8(ct_volume[z], "ct-soft-tissue")
    reference = ct_labels[z] == 5
    pred = engine.predict(engine.embed(image)[0], image.shape, box=bbox_xyxy(reference))
    score = dice(pred.mask, reference)
    print(f"weight-free liver box Dice on slice {z}: {score:.3f}")
    assert score >= 0.8
    assert pred.low_res_logits.shape == (1, 64, 64)
    # a negative click on the object removes it
    rows, cols = np.nonzero(pred.mask)
    k = len(rows) // 2
    neg = engine.predict(engine.embed(image)[0], image.shape, points=np.array([[cols[k], rows[k]]]),
                         point_labels=np.array([0]), box=bbox_xyxy(reference))
    assert neg.mask.sum() < pred.mask.sum()


def test_weight_free_points_and_mask_prompt(ct_volume, ct_labels):
    engine = ns.SliceEngine(ns.load_model(kind="weight-free"))
    z = middle_slice(ct_labels, 1)  # spleen
    image = to_uint8(ct_volume[z], "ct-soft-tissue")
    reference = ct_labels[z] == 1
    rows, cols = np.nonzero(reference)
    centre = np.array([[cols.mean(), rows.mean()]])
    emb = engine.embed(image)[0]
    by_box = engine.predict(emb, image.shape, box=bbox_xyxy(reference))
    refined = engine.predict(emb, image.shape, points=centre, point_labels=np.array([1]),
                             box=bbox_xyxy(reference), mask_input=by_box.low_res_logits)
    assert dice(refined.mask, reference) >= 0.8
