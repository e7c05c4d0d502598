"""Malformed JSON/CSV the CLI reads: one line naming the file and the problem, exit code 2."""

from __future__ import annotations

import json

import pytest

from tests.hostile.conftest import one_line_error, run, snapshot


@pytest.mark.parametrize(("payload", "fragment"), [
    ("{not json", "not valid JSON (line 1"),
    ("[1, 2]", "Input should be a valid dictionary"),
    ('{"objects": {"1": []}}', "at objects.1: Input should be a valid dictionary"),
    ('{"objects": {"one": {"3": {"box": [1, 1, 5, 5]}}}}', "key 'one' must be a non-negative integer"),
    ('{"objects": {"1": {"3": {"box": "abc"}}}}', "at objects.1.3.box"),
    ('{"objects": {"1": {"3": {"box": [9, 9, 2, 2]}}}}', "x0 < x1 and y0 < y1"),
    ('{"objects": {"1": {"3": {"points": [[5, NaN]]}}}}', "NaN is not a number JSON allows"),
    ('{"objects": {"1": {"3": {"points": [[5, 5]], "labels": [1, 0]}}}}', "one entry (1 positive, 0 negative) per point"),
    ('{"objects": {"1": {"3": {"bx": [1, 1, 5, 5]}}}}', "bx: Extra inputs are not permitted"),
    ('{"objects": {"1": {"3": {}}}}', "a prompt needs a box or points"),
    ('{"objects": {"1": {"3": {"box": [1, 1, 5, 5]}}}, "stops": {"1": [[2, 3]]}}', "use [slice] or [slice, x, y]"),
])
def test_bad_prompt_json(tmp_path, capsys, case_files, payload, fragment):
    image, _ = case_files
    prompts = tmp_path / "prompts.json"
    prompts.write_text(payload)
    out = tmp_path / "out.nii.gz"
    code, _, err = run(capsys, "propagate", image, prompts, out, "--kind", "weight-free")
    assert code == 2
    one_line_error(err, "propagate", fragment, prompts)
    assert not out.exists()


@pytest.mark.parametrize(("payload", "fragment"), [
    ('["spleen"]', "Input should be a valid dictionary"),
    ('{"a": "spleen"}', "key 'a' must be a non-negative integer"),
    ('{"1": ""}', "at 1: String should have at least 1 character"),
    ('{"0": "background"}', "label 0 is the background"),
    ('{"1": 5}', "at 1: Input should be a valid string"),
])
def test_bad_class_names_json(tmp_path, capsys, case_files, payload, fragment):
    image, labels = case_files
    names = tmp_path / "names.json"
    names.write_text(payload)
    code, _, err = run(capsys, "export", image, labels, tmp_path / "ds", "--format", "nnunet", "--class-names", names)
    assert code == 2
    one_line_error(err, "export", fragment, names)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(("csv", "fragment"), [
    ("object_id,slice\n1,2\n", "missing column(s) source, area"),
    ("object_id,slice,source,predicted_iou,neighbour_iou,area,direction,stop_reason\n1,2,seed,,,x,0,\n",
     "line 2: at area: Input should be a valid integer"),
    ("object_id,slice,source,predicted_iou,neighbour_iou,area,direction,stop_reason\n1,2,guess,,,9,0,\n",
     "line 2: at source: Value error, source 'guess' is not seed"),
    ("object_id,slice,source,predicted_iou,neighbour_iou,area,direction,stop_reason\n1,2,seed,,,9,0,,extra\n",
     "line 2: more fields than the header has"),
    ("object_id,slice,source,predicted_iou,neighbour_iou,area,direction,stop_reason\n1,2,seed,inf,,9,0,\n",
     "line 2: at predicted_iou"),
])
def test_bad_qc_csv(tmp_path, capsys, case_files, csv, fragment):
    image, labels = case_files
    qc = tmp_path / "trace.csv"
    qc.write_text(csv)
    code, _, err = run(capsys, "export", image, labels, tmp_path / "stacks", "--format", "tiff", "--qc", qc)
    assert code == 2
    one_line_error(err, "export", fragment, qc)
    assert not (tmp_path / "stacks").exists()


@pytest.mark.parametrize(("name", "payload", "fragment"), [
    ("image2label_train.json", "[]", "Input should be a valid dictionary"),
    ("image2label_train.json", '{"ds/images/a.png": "ds/masks/a_x_000.png"}', "Input should be a valid list"),
    ("label2image_test.json", "{", "not valid JSON"),
    ("napari_sammed_provenance.json", '{"cases": []}', "at cases: Input should be a valid dictionary"),
    # issue 24: RecursionError tracebacks before
    ("image2label_train.json", "[" * 100_000 + "]" * 100_000, "not usable JSON: nested too deeply"),
    ("napari_sammed_provenance.json", "[" * 100_000 + "]" * 100_000, "not usable JSON: nested too deeply"),
])
def test_bad_sammed2d_index_on_append(tmp_path, capsys, case_files, name, payload, fragment):
    image, labels = case_files
    dataset = tmp_path / "ds"
    assert run(capsys, "export", image, labels, dataset, "--format", "sammed2d", "--case", "a")[0] == 0
    (dataset / name).write_text(payload)
    before = snapshot(dataset)
    code, _, err = run(capsys, "export", image, labels, dataset, "--format", "sammed2d", "--case", "b", "--append")
    assert code == 2
    one_line_error(err, "export", fragment, dataset / name)
    assert snapshot(dataset) == before


def test_bad_nnunet_dataset_json_on_append(tmp_path, capsys, case_files):
    image, labels = case_files
    args = ["export", image, labels, tmp_path / "raw", "--format", "nnunet", "--dataset-id", "7", "--case", "a"]
    assert run(capsys, *args)[0] == 0
    info = tmp_path / "raw" / "Dataset007_Annotations" / "dataset.json"
    payload = json.loads(info.read_text())
    payload["labels"] = {"background": 0, "label_1": "one"}
    info.write_text(json.dumps(payload))
    before = snapshot(tmp_path / "raw")
    code, _, err = run(capsys, *args[:-1], "b", "--append")
    assert code == 2
    one_line_error(err, "export", "at labels.label_1: Input should be a valid integer", info)
    assert snapshot(tmp_path / "raw") == before


def test_bad_command_line_values(tmp_path, capsys, case_files):
    image, labels = case_files
    code, _, err = run(capsys, "propagate", image, labels, tmp_path / "o.nii.gz", "--objects", "1,x", "--kind", "weight-free")
    assert code == 2
    one_line_error(err, "propagate", "--objects '1,x': give label ids as comma-separated integers")
    code, _, err = run(capsys, "export", image, labels, tmp_path / "s", "--format", "tiff", "--window", "a,b")
    assert code == 2
    one_line_error(err, "export", "--window 'a,b': give a preset name or two numbers LOW,HIGH")
    code, _, err = run(capsys, "export", image, labels, tmp_path / "s", "--format", "tiff", "--class-names", "1=a,1=b")
    assert code == 2
    one_line_error(err, "export", "label 1 is named twice ('a' and 'b')")
