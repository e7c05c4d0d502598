"""Paths read from or written into a dataset stay inside it: no '..', no absolute paths, no symlinks out."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from skimage.io import imsave

from tests.hostile.conftest import one_line_error, run, snapshot


def sammed2d_with_case(capsys, case_files, dataset):
    image, labels = case_files
    assert run(capsys, "export", image, labels, dataset, "--format", "sammed2d", "--case", "a", "--split", "train")[0] == 0
    return json.loads((dataset / "image2label_train.json").read_text())


@pytest.mark.parametrize("entry", ["ds/../victim.txt", "ds/masks/../../victim.txt", "/tmp/victim.txt", "other/masks/x.png"])
def test_overwrite_never_deletes_outside_the_dataset(tmp_path, capsys, case_files, entry):
    """A hostile index that lists a file outside the dataset as the old case's mask: an overwrite
    used to delete it as a 'stale' file. Now: refused, victim and dataset untouched."""
    dataset = tmp_path / "ds"
    train = sammed2d_with_case(capsys, case_files, dataset)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    if entry.startswith("/"):
        entry = str(victim)
    first = next(iter(train))
    train[first].append(entry)
    (dataset / "image2label_train.json").write_text(json.dumps(train))
    before = snapshot(dataset)
    image, labels = case_files
    code, _, err = run(capsys, "export", image, labels, dataset, "--format", "sammed2d", "--case", "a", "--overwrite")
    assert code == 2
    fragment = ("absolute path" if entry.startswith("/") else "does not start with 'ds/'" if entry.startswith("other")
                else "leads outside")
    one_line_error(err, "export", fragment, dataset / "image2label_train.json")
    assert victim.read_bytes() == b"precious\n"
    assert snapshot(dataset) == before  # old case intact and still listed
    assert first in json.loads((dataset / "image2label_train.json").read_text())


def test_symlinked_folder_inside_dataset_is_not_written_through(tmp_path, capsys, case_files):
    dataset = tmp_path / "ds"
    sammed2d_with_case(capsys, case_files, dataset)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    for p in (dataset / "masks").iterdir():
        p.rename(outside / p.name)
    (dataset / "masks").rmdir()
    os.symlink(outside, dataset / "masks")
    before_outside, before = snapshot(outside), snapshot(dataset)
    image, labels = case_files
    code, _, err = run(capsys, "export", image, labels, dataset, "--format", "sammed2d", "--case", "b", "--append")
    assert code == 2
    one_line_error(err, "export", "leads outside", dataset / "image2label_train.json")  # listed masks go through it
    assert snapshot(outside) == before_outside and snapshot(dataset) == before
    assert not [p for p in tmp_path.rglob(".napari-sammed-stage-*")]


def test_symlinked_file_target_is_refused(tmp_path, capsys, case_files):
    """A staged target whose final name is a symlink to a file outside: refused before any move."""
    image, labels = case_files
    raw = tmp_path / "raw"
    args = ["export", image, labels, raw, "--format", "nnunet", "--dataset-id", "2", "--case", "a"]
    assert run(capsys, *args)[0] == 0
    victim = tmp_path / "victim.nii.gz"
    victim.write_bytes(b"precious")
    folder = raw / "Dataset002_Annotations"
    os.symlink(victim, folder / "labelsTr" / "b.nii.gz")
    code, _, err = run(capsys, *args[:-1], "b", "--append", "--overwrite")
    assert code == 2
    one_line_error(err, "export", "leads outside", folder)
    assert victim.read_bytes() == b"precious"
    assert json.loads((folder / "dataset.json").read_text())["numTraining"] == 1


@pytest.mark.parametrize("entry", ["demo/../secret.png", "/etc/hostname", "elsewhere/secret.png"])
def test_evaluate_reads_nothing_outside_the_dataset(tmp_path, capsys, entry):
    dataset = tmp_path / "demo"
    (dataset / "images").mkdir(parents=True)
    (dataset / "masks").mkdir()
    image = np.zeros((32, 32), np.uint8)
    imsave(str(dataset / "images" / "i.png"), image, check_contrast=False)
    imsave(str(tmp_path / "secret.png"), image, check_contrast=False)
    (dataset / "label2image_test.json").write_text(json.dumps({entry: "demo/images/i.png"}))
    code, _, err = run(capsys, "evaluate", dataset, "--kind", "weight-free", "--prompts", "bbox")
    assert code == 2
    fragment = {"/": "absolute path", "d": "leads outside", "e": "does not start with 'demo/'"}[entry[0]]
    one_line_error(err, "evaluate", fragment, dataset / "label2image_test.json")
