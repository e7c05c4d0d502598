"""The simulated-annotator protocol (CVPR 2025): on synthetic volumes through a scripted annotator,
and ``napari-sammed simulate`` as a subprocess on the shared MR."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from napari_sammed.core.jobs.simulate import reference_box, simulate_class
from tests.conftest import PACKAGE_DATA
from tests.hostile.conftest import one_line_error


class ScriptedAnnotator:
    """Answers the box with ``first`` and each click by setting the clicked voxel as clicked."""

    def __init__(self, first: np.ndarray) -> None:
        self.current, self.calls = first.copy(), []

    def box(self, object_id, index, box, z_range=None):
        self.calls.append(("box", index, tuple(box), z_range))
        return self.current.copy()

    def click(self, object_id, index, x, y, positive=True):
        self.calls.append(("click", index, x, y, positive))
        self.current[index, int(y), int(x)] = positive
        return self.current.copy()


def cube(shape=(12, 20, 20), lo=(3, 5, 6), hi=(9, 15, 14)) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    return out


def test_the_box_is_the_reference_box_on_its_middle_slice_with_its_z_range():
    truth = cube()
    index, box, z_range = reference_box(truth)
    assert index == 6 and z_range == (3, 8)
    assert box.tolist() == [6, 5, 14, 15]  # x0, y0, x1, y1 in pixel edges
    with pytest.raises(ValueError, match="empty"):
        reference_box(np.zeros((3, 4, 4), bool))


def test_a_perfect_predictor_scores_dsc_auc_4():
    truth = cube()
    ann = ScriptedAnnotator(truth)
    run = simulate_class(ann, 1, truth, (3.0, 1.0, 1.0), clicks=5)
    assert run.dice == [1.0] * 6 and run.nsd == [1.0] * 6
    assert run.dsc_auc == 4.0 and run.nsd_auc == 4.0
    assert [c[0] for c in ann.calls] == ["box"]  # nothing left to click


def test_each_click_goes_to_the_largest_errors_deepest_voxel_on_its_slice():
    truth = cube()
    first = truth.copy()
    first[3:8, 7:12, 8:13] = False  # the larger error: a missed 5 x 5 x 5 block, centre (5, 9, 10)
    first[0, 0, 0] = True  # a one-voxel false positive elsewhere
    ann = ScriptedAnnotator(first)
    run = simulate_class(ann, 1, truth, (1.0, 1.0, 1.0), clicks=1)
    assert ann.calls[0] == ("box", 6, (6.0, 5.0, 14.0, 15.0), (3, 8))
    kind, index, x, y, positive = ann.calls[1]
    assert (kind, positive) == ("click", True)
    assert index == 5 and (x, y) == (10.5, 9.5)  # voxel centre of (row 9, col 10)
    assert run.dice[1] > run.dice[0] and len(run.seconds) == 2


def _run(*args):
    return subprocess.run([sys.executable, "-m", "napari_sammed.cli", "simulate", *args],
                          capture_output=True, text=True, timeout=900)


def test_simulate_command_prints_the_table_and_writes_the_csv(tmp_path):
    image, labels = PACKAGE_DATA / "example_mr_sm.nii.gz", PACKAGE_DATA / "example_seg_mr.nii.gz"
    out = tmp_path / "protocol.csv"
    result = _run(str(image), str(labels), "--classes", "3,5", "--clicks", "2", "--csv", str(out))
    assert result.returncode == 0, result.stderr
    assert "| **mean** |" in result.stdout and "DSC_AUC" in result.stdout and "LiteMedSAM" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert [(r["class"], r["step"], r["interaction"]) for r in rows] == [
        ("3", "0", "box"), ("3", "1", "click"), ("3", "2", "click"),
        ("5", "0", "box"), ("5", "1", "click"), ("5", "2", "click")]
    for row in rows:
        assert 0.5 < float(row["dice"]) <= 1.0 and 0.0 <= float(row["nsd"]) <= 1.0
        assert float(row["seconds"]) > 0
        assert 0.5 < float(row["dsc_auc"]) <= 1.0  # two click steps: one trapezoid
    again = _run(str(image), str(labels), "--classes", "3", "--clicks", "1", "--csv", str(out))
    assert again.returncode == 2 and "exists" in again.stderr


def test_simulate_command_refuses_bad_input_in_one_line(tmp_path):
    image, labels = PACKAGE_DATA / "example_mr_sm.nii.gz", PACKAGE_DATA / "example_seg_mr.nii.gz"
    missing = _run(str(image), str(labels), "--classes", "99", "--kind", "weight-free")
    assert missing.returncode == 2 and "class(es) 99 not in the labels" in missing.stderr
    other = _run(str(image), str(PACKAGE_DATA / "example_seg.nii.gz"), "--kind", "weight-free")
    assert other.returncode == 2 and "shape" in other.stderr
    assert "Traceback" not in missing.stderr + other.stderr


def _nifti(path, data):
    import nibabel as nib

    nib.Nifti1Image(np.asarray(data), np.eye(4)).to_filename(str(path))
    return str(path)


@pytest.mark.parametrize("labels, args, message", [
    (np.zeros((6, 24, 24), np.uint8), [], "hold no class"),
    (np.full((6, 24, 24), 0.3, np.float32), [], "whole numbers"),
    (-cube((6, 24, 24), (1, 4, 4), (5, 12, 12)).astype(np.int16), [], "whole numbers"),
    (cube((6, 24, 24), (1, 4, 4), (5, 12, 12)).astype(np.uint8), ["--batch-size", "-3"], "--batch-size -3"),
    (cube((6, 24, 24), (1, 4, 4), (5, 12, 12)).astype(np.uint8), ["--csv", "."], "is a folder"),
])
def test_simulate_refuses_bad_labels_and_options_before_any_work(tmp_path, labels, args, message):
    image = _nifti(tmp_path / "image.nii.gz", np.random.default_rng(0).normal(size=(6, 24, 24)).astype(np.float32))
    result = _run(image, _nifti(tmp_path / "labels.nii.gz", labels), "--kind", "weight-free", *args)
    assert result.returncode == 2, result.stderr
    one_line_error(result.stderr, "simulate", message)  # status lines (loading model ...) may precede it
