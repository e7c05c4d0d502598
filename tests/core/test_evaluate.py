"""``evaluate``: SAM-Med2D's test protocol on SAM-Med2D's data_demo (tests/data), and its pieces."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from napari_sammed.cli import main
from napari_sammed.core.engine.families import load_model
from napari_sammed.core.engine.frame import ProtocolFrame, mask_box
from napari_sammed.core.engine.slice_engine import SliceEngine
from napari_sammed.core.errors import InputError
from napari_sammed.core.jobs import evaluate as ev
from tests.conftest import DATA_DEMO

DEMO_CLASSES = {"aorta", "colon", "femur_right", "gluteus_maximus_left", "gluteus_maximus_right", "hip_left",
                "hip_right", "inferior_vena_cava", "liver"}


def test_reads_the_demo_test_set():
    items = ev.read_test_set(DATA_DEMO)
    assert len(items) == 11
    assert {item.class_name for item in items} == DEMO_CLASSES
    assert all(item.image.is_file() and item.mask.is_file() for item in items)


def test_frame_pads_small_images_and_resizes_others():
    small = ProtocolFrame(155, 225, ev.FRAME)
    assert small.pad and (small.top, small.left) == (50, 15)
    image = np.arange(155 * 225, dtype=np.float32).reshape(155, 225)
    framed = small.forward(image)
    assert framed.shape == (256, 256) and framed[:50].sum() == 0
    np.testing.assert_array_equal(small.back(framed), image)  # crop undoes the pad exactly
    big = ProtocolFrame(181, 258, ev.FRAME)  # one side >= 256: nearest resize, bilinear back
    assert not big.pad
    assert big.forward(np.ones((181, 258, 3), np.uint8)).shape == (256, 256, 3)
    assert big.back(np.zeros((256, 256), np.float32)).shape == (181, 258)


def test_box_of_the_largest_component():
    mask = np.zeros((40, 40), bool)
    mask[2:5, 2:5] = True  # small part
    mask[10:30, 12:20] = True  # large part
    np.testing.assert_array_equal(ev.largest_component_box(mask), [12, 10, 20, 30])


def test_one_mask_to_box_serves_evaluate_simulate_and_propagation():
    # Issue 25: four copies of mask -> box; the numpy ones are now frame.mask_box.
    from napari_sammed.core.jobs.simulate import reference_box
    from napari_sammed.core.volume.slice_step import enlarged_box

    mask = np.zeros((40, 50), bool)
    mask[10:30, 12:20] = True
    assert mask_box(np.zeros((4, 4), bool)) is None
    np.testing.assert_array_equal(mask_box(mask), [12, 10, 20, 30])
    np.testing.assert_array_equal(ev.largest_component_box(mask), mask_box(mask))
    np.testing.assert_array_equal(reference_box(mask[None])[1], mask_box(mask))
    np.testing.assert_array_equal(enlarged_box(mask, 0.0, 0.0), mask_box(mask))


class Spy:
    """Records the prompts each decoder call gets, answering with an empty mask."""

    def __init__(self, engine):
        self.engine, self.calls = engine, []
        self.protocol_mask_prompt = engine.protocol_mask_prompt

    def predict(self, embedding, size, points=None, point_labels=None, box=None, mask_input=None):
        self.calls.append((None if points is None else np.array(points), point_labels, box, mask_input))
        return self.engine.predict(embedding, size, points, point_labels, box, mask_input)


def test_point_rounds_follow_the_protocol():
    engine = SliceEngine(load_model(kind="weight-free"))
    image = np.zeros((64, 64), np.uint8)
    image[20:40, 20:40] = 200
    truth = np.zeros((64, 64), bool)
    truth[20:40, 20:30] = True  # only the left half of the bright square: the engine spills right
    spy = Spy(engine)
    ev.predict_mode(spy, engine.embed(image)[0], truth, "5pt", np.random.default_rng(0))
    assert 2 <= len(spy.calls) <= 5
    first_points, first_labels, box, mask_input = spy.calls[0]
    assert box is None and mask_input is None and list(first_labels) == [1]
    x, y = first_points[0]
    assert truth[int(y), int(x)]  # the first click is on the object
    for round_index, (points, labels, box, mask_input) in enumerate(spy.calls[1:], start=2):
        assert len(points) == round_index and box is None and mask_input is not None
        x, y = points[-1]
        assert labels[-1] == int(truth[int(y), int(x)])  # positive where missed, negative where spilled
    bbox = Spy(engine)
    ev.predict_mode(bbox, engine.embed(image)[0], truth, "bbox", np.random.default_rng(0))
    assert len(bbox.calls) == 1 and list(bbox.calls[0][2]) == [20, 20, 30, 40]


def test_networks_get_sigmoid_mask_prompts(small_checkpoint):
    engine = SliceEngine(load_model(small_checkpoint, device="cpu"))
    low = np.array([[[-3.0, 0.0, 3.0]]], np.float32)
    np.testing.assert_allclose(ev.protocol_mask_prompt(engine, low), 1 / (1 + np.exp(-low)), rtol=1e-6)
    classical = SliceEngine(load_model(kind="weight-free"))
    np.testing.assert_array_equal(ev.protocol_mask_prompt(classical, low), low)


def test_cli_prints_table_and_csv_on_data_demo(capsys):
    assert main(["evaluate", str(DATA_DEMO), "--seed", "0", "--kind", "weight-free"]) == 0
    out = capsys.readouterr().out
    assert "weight-free segmenter" in out and "11 masks" in out
    table, csv_text = out.split("\n\n", 1)
    rows = {r["class"]: r for r in csv.DictReader(io.StringIO(csv_text))}
    assert set(rows) == DEMO_CLASSES | {"overall"}
    assert rows["overall"]["n"] == "11" and rows["hip_left"]["n"] == "2"
    overall = {mode: float(rows["overall"][mode]) for mode in ("bbox", "1pt", "3pt", "5pt")}
    # weight-free, measured: bbox 76.53; the point modes depend on where clicks land (~45-60)
    assert overall["bbox"] >= 70.0
    assert all(0.0 < v <= 100.0 for v in overall.values())
    for cls in DEMO_CLASSES:
        assert cls in table
    assert main(["evaluate", str(DATA_DEMO), "--seed", "0", "--kind", "weight-free"]) == 0
    assert capsys.readouterr().out == out  # seeded: the same numbers again


def test_cli_default_engine_is_lite_medsam_bbox(capsys):
    assert main(["evaluate", str(DATA_DEMO), "--prompts", "bbox"]) == 0
    out = capsys.readouterr().out
    assert "LiteMedSAM sha256 79d8c9dca6db" in out and "11 masks" in out
    rows = {r["class"]: r for r in csv.DictReader(io.StringIO(out.split("\n\n", 1)[1]))}
    # measured 76.17 overall (liver 83.9, IVC 95.0); SAM-Med2D's paper: 79.30 on its own test set
    assert float(rows["overall"]["bbox"]) >= 70.0


def test_cli_with_a_sam_med2d_checkpoint_and_csv_file(tmp_path, small_checkpoint, capsys):
    out_csv = tmp_path / "scores.csv"
    assert main(["evaluate", str(DATA_DEMO), "--checkpoint", str(small_checkpoint), "--device", "cpu",
                 "--prompts", "bbox,3pt", "--csv", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert "SAM-Med2D sha256" in printed
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert rows[-1]["class"] == "overall" and set(rows[0]) == {"class", "n", "bbox", "3pt"}
    before = out_csv.read_text()  # an existing CSV is kept unless --overwrite, refused before the model loads
    assert main(["evaluate", str(DATA_DEMO), "--checkpoint", str(tmp_path / "none.pth"), "--csv", str(out_csv)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out_csv.read_text() == before


def test_bad_datasets(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "label2image_test.json" in capsys.readouterr().err
    demo = tmp_path / "data_demo"
    shutil.copytree(DATA_DEMO, demo)
    pairs = json.loads((demo / "label2image_test.json").read_text())
    pairs["data_demo/masks/missing_liver_000.png"] = "data_demo/images/missing.png"
    (demo / "label2image_test.json").write_text(json.dumps(pairs))
    assert main(["evaluate", str(demo)]) == 2
    assert "does not exist" in capsys.readouterr().err
    for mask in (demo / "masks").glob("*.png"):  # every test mask blank: nothing to score
        Image.open(mask).point(lambda _: 0).save(mask)
    pairs.pop("data_demo/masks/missing_liver_000.png")
    (demo / "label2image_test.json").write_text(json.dumps(pairs))
    assert main(["evaluate", str(demo), "--kind", "weight-free", "--prompts", "bbox"]) == 2
    assert "every test mask is empty" in capsys.readouterr().err
    with pytest.raises(InputError, match="prompt mode 'lasso'"):
        ev.EvaluateSettings(prompts="bbox,lasso")
    assert main(["evaluate", str(DATA_DEMO), "--prompts", ",,"]) == 2
    assert "no prompt mode" in capsys.readouterr().err


def test_the_score_table_is_the_shared_text_table():
    # Issue 25: evaluate and batch each aligned their own table; io.tables.text_table serves both.
    from napari_sammed.core.io.tables import text_table

    scores = [ev.MaskScore("a", "liver", "bbox", 0.7617), ev.MaskScore("b", "ivc", "bbox", 0.95),
              ev.MaskScore("b", "ivc", "1pt", 0.5)]
    table = text_table(["class", "n", "bbox", "1pt"], [["ivc", 1, "95.00", "50.00"], ["liver", 1, "76.17", ""],
                                                        ["overall", 2, "85.58", "50.00"]], rule_before_last=True)
    assert table.splitlines() == ["class    n   bbox    1pt", "ivc      1  95.00  50.00", "liver    1  76.17",
                                  "-" * 24, "overall  2  85.58  50.00"]
    assert ev.format_table(scores, "Dice") == "Dice\n" + table
