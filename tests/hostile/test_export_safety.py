"""Exports that must not lose or merge data: clashing class names, failed overwrites, big label ids."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile

import napari_sammed.core.export.staging as staging
from napari_sammed.core.export import ExportCase, ExportOptions, export_case
from napari_sammed.core.io.read import read_volume
from napari_sammed.core.io.write import write_volume
from tests.hostile.conftest import one_line_error, run, save_nifti, snapshot, tiny_image, tiny_labels


@pytest.mark.parametrize("fmt", ["sammed2d", "nnunet", "tiff"])
def test_class_names_differing_only_by_separator_are_refused(tmp_path, capsys, case_files, fmt):
    image, labels = case_files
    code, _, err = run(capsys, "export", image, labels, tmp_path / "out", "--format", fmt,
                       "--class-names", "1=kidney right,2=kidney_right")
    assert code == 2
    one_line_error(err, "export", "class names 'kidney right' (label 1) and 'kidney_right' (label 2) both become "
                                  "'kidney_right' in file names; give them distinct names")
    assert not (tmp_path / "out").exists()


class OsFailingAt:
    """The ``os`` module as one module sees it, with a :class:`FailingReplace` of its own."""

    def __init__(self, n: int) -> None:
        self.replace = FailingReplace(n)

    def __getattr__(self, name):
        return getattr(os, name)


class FailingReplace:
    """os.replace that fails on its n-th call (a full disk in the middle of a commit)."""

    def __init__(self, n: int) -> None:
        self.n, self.calls, self.real = n, 0, os.replace

    def __call__(self, src, dst):
        self.calls += 1
        if self.calls == self.n:
            raise OSError(28, "No space left on device")
        return self.real(src, dst)


@pytest.mark.parametrize("fail_at", [2, 5, 9])
def test_failed_overwrite_keeps_the_old_case_intact_and_listed(tmp_path, capsys, case_files, monkeypatch, fail_at):
    image, labels = case_files
    dataset = tmp_path / "ds"
    args = ["export", image, labels, dataset, "--format", "sammed2d", "--case", "a", "--split", "train"]
    assert run(capsys, *args)[0] == 0
    other = save_nifti(tmp_path / "other.nii.gz", (tiny_labels() > 0).astype(np.uint8) * 3)
    before = snapshot(dataset)
    monkeypatch.setattr(staging.os, "replace", FailingReplace(fail_at))
    code, _, err = run(capsys, "export", image, other, dataset, "--format", "sammed2d", "--case", "a",
                       "--split", "train", "--overwrite")
    assert code == 2
    one_line_error(err, "export", "No space left on device")
    assert snapshot(dataset) == before
    train = json.loads((dataset / "image2label_train.json").read_text())
    assert all((tmp_path / m).is_file() for k, v in train.items() for m in (k, *v)) and len(train) == 4


def test_failed_zarr_overwrite_restores_the_old_store(tmp_path, capsys, case_files, monkeypatch):
    image, labels = case_files
    args = ["export", image, labels, tmp_path / "stacks", "--format", "zarr", "--case", "a"]
    assert run(capsys, *args)[0] == 0
    before = snapshot(tmp_path / "stacks")
    # Only the commit's renames count: zarr writes its chunks through os.replace too, concurrently,
    # so a global count would land in a different write each run (see the session notes).
    monkeypatch.setattr(staging, "os", OsFailingAt(4))
    code, _, err = run(capsys, *args, "--overwrite")
    assert code == 2 and "No space left on device" in err
    assert snapshot(tmp_path / "stacks") == before


BIG = [2**24 + 1, 2**24 + 3, 2**31 + 7]


def test_tiff_labels_above_2_24_keep_integer_values(tmp_path, capsys):
    labels = np.zeros((3, 8, 8), np.uint32)
    for k, value in enumerate(BIG):
        labels[k, 2:5, 2:5] = value
    case = ExportCase("big", tiny_image()[:3, :8, :8], labels, {"spacing": [2.0, 0.8, 0.8]})
    report = export_case(case, ExportOptions(format="tiff", folder=str(tmp_path / "stacks"), include_image=False))
    assert report.dataset == tmp_path / "stacks" and report.summary.startswith(f"wrote {report.details['files'][0]}, ")
    path = report.details["files"][0]
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].dtype == np.uint32
    back = read_volume(path)
    assert back.data.dtype == np.uint32 and back.spacing == (2.0, 0.8, 0.8)
    np.testing.assert_array_equal(back.data, labels)
    assert sorted(int(v) for v in np.unique(back.data)) == [0, *BIG]

    out = write_volume(tmp_path / "p.tif", labels, {"spacing": [2.0, 0.8, 0.8]})  # propagate's writer
    np.testing.assert_array_equal(read_volume(out).data, labels)

    small = write_volume(tmp_path / "s.tif", (labels > 0).astype(np.uint8), {"spacing": [2.0, 0.8, 0.8]})
    with tifffile.TiffFile(small) as tif:  # up to 16 bits: still an ImageJ hyperstack
        assert tif.is_imagej and tif.series[0].dtype == np.uint16
