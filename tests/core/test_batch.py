"""``napari-sammed batch``: a plan over the shared CT, the shared MR and a truncated file, run in one
process and on a dask LocalCluster of 2 worker processes, resumed, exported, and bad plans refused."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile

from napari_sammed.cli import main
from tests.conftest import PACKAGE_DATA, dice, displayed

ORGANS = {1: "spleen", 2: "kidney right", 3: "kidney left", 5: "liver"}
SAMPLES = {"ct": ("example_ct_sm.nii.gz", "example_seg.nii.gz"), "mr": ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz")}
ROOT = Path(__file__).resolve().parents[2]


def plan_text(export: str) -> str:
    return f"""\
steps: [propagate, samaug, export]
export: {export}
class_names: {{1: spleen, 2: kidney right, 3: kidney left, 5: liver}}
samaug: {{points_per_side: 16}}
cases:
  - {{name: ct, image: images/ct.nii.gz, seeds: seeds/ct.nii.gz, window: ct-abdomen}}
  - {{name: mr, image: images/mr.nii.gz, seeds: seeds/mr.nii.gz}}
  - {{name: broken, image: images/broken.nii.gz, seeds: seeds/ct.nii.gz}}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """images/, seeds/ (the reference mask of each organ on its middle slice) and two plans."""
    root = tmp_path_factory.mktemp("batch")
    (root / "images").mkdir()
    (root / "seeds").mkdir()
    for name, (image, seg) in SAMPLES.items():
        shutil.copy(PACKAGE_DATA / image, root / "images" / f"{name}.nii.gz")
        source = nib.load(str(PACKAGE_DATA / seg))
        ref = np.asarray(source.dataobj).T
        seeds = np.zeros_like(ref)
        for organ in ORGANS:
            present = np.flatnonzero((ref == organ).any(axis=(1, 2)))
            k = present[len(present) // 2]
            seeds[k][ref[k] == organ] = organ
        nib.save(nib.Nifti1Image(seeds.T, source.affine, source.header), str(root / "seeds" / f"{name}.nii.gz"))
    whole = (PACKAGE_DATA / SAMPLES["ct"][0]).read_bytes()
    (root / "images" / "broken.nii.gz").write_bytes(whole[: len(whole) // 3])  # truncated
    (root / "nnunet.yaml").write_text(plan_text("{format: nnunet, dataset_id: 12, dataset_name: Abdomen, channel: CT}"))
    (root / "sammed2d.json").write_text(json.dumps({  # the same plan as JSON, another export
        "steps": ["propagate", "samaug", "export"],
        "export": {"format": "sammed2d", "dataset_name": "AbdomenSAM", "split": "train"},
        "class_names": {"1": "spleen", "2": "kidney right", "3": "kidney left", "5": "liver"},
        "samaug": {"points_per_side": 16},
        "cases": [{"name": "ct", "image": "images/ct.nii.gz", "seeds": "seeds/ct.nii.gz", "window": "ct-abdomen"},
                  {"name": "mr", "image": "images/mr.nii.gz", "seeds": "seeds/mr.nii.gz"},
                  {"name": "broken", "image": "images/broken.nii.gz", "seeds": "seeds/ct.nii.gz"}]}))
    return root


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def summary(outdir: Path) -> dict[str, dict]:
    with open(outdir / "summary.csv") as f:
        return {row["case"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def local(data, tmp_path_factory) -> tuple[Path, int, str]:
    outdir = tmp_path_factory.mktemp("local") / "out"
    code, printed, _ = run_cli(["batch", str(data / "nnunet.yaml"), str(outdir), "--kind", "weight-free"])
    return outdir, code, printed


def test_local_run_writes_every_output_and_an_error_row(data, local):
    outdir, code, printed = local
    assert code == 1  # one case failed
    rows = summary(outdir)
    assert list(rows) == ["ct", "mr", "broken"]
    assert list(next(iter(rows.values()))) == ["case", "status", "seconds", "objects", "mean_predicted_iou", "error"]
    assert rows["ct"]["status"] == rows["mr"]["status"] == "ok"
    assert rows["ct"]["objects"] == rows["mr"]["objects"] == "4"
    assert 0.5 < float(rows["ct"]["mean_predicted_iou"]) <= 1.0
    assert rows["broken"]["status"] == "error"
    assert rows["broken"]["error"].startswith(str(data / "images" / "broken.nii.gz") + ": cannot read NIfTI")
    assert "\n" not in rows["broken"]["error"]
    assert printed.splitlines()[0].split() == ["case", "status", "seconds", "objects", "mean_predicted_iou", "error"]
    assert "2 of 3 cases done, 1 failed" in printed

    for name, (_, seg) in SAMPLES.items():
        labels_image, source = nib.load(str(outdir / name / "labels.nii.gz")), nib.load(str(data / "images" / f"{name}.nii.gz"))
        np.testing.assert_array_equal(labels_image.affine, source.affine)  # the image's geometry
        assert labels_image.shape == source.shape
        labels, ref = np.asarray(labels_image.dataobj).T, np.asarray(nib.load(str(PACKAGE_DATA / seg)).dataobj).T
        if name == "ct":
            assert dice(labels == 5, ref == 5) >= 0.8  # the liver, propagated from one slice
        assert set(np.unique(labels)) == {0, *ORGANS}
        assert (outdir / name / "qc.csv").read_text().startswith("object_id,slice,source,predicted_iou")
        maps = {m: tifffile.imread(outdir / name / "samaug" / f"{name}_{m}.tif")
                for m in ("seg_prior", "boundary_prior", "augmented")}
        assert maps["seg_prior"].shape == labels.shape and maps["augmented"].shape == (*labels.shape, 3)
        done = json.loads((outdir / name / "done.json").read_text())
        assert done["status"] == "ok" and done["engine"]["kind"] == "weight-free"
    assert not (outdir / "broken" / "done.json").exists()
    assert not list(outdir.rglob(".napari-sammed-*"))  # no temporary file left behind

    # the export reads back: one nnU-Net dataset with both good cases, labels mapped by class name
    dataset = outdir / "export" / "Dataset012_Abdomen"
    info = json.loads((dataset / "dataset.json").read_text())
    assert info["numTraining"] == 2
    assert info["labels"] == {"background": 0, "spleen": 1, "kidney_right": 2, "kidney_left": 3, "liver": 4}
    for name in SAMPLES:
        exported = nib.load(str(dataset / "labelsTr" / f"{name}.nii.gz"))
        image = nib.load(str(dataset / "imagesTr" / f"{name}_0000.nii.gz"))
        source = nib.load(str(data / "images" / f"{name}.nii.gz"))
        np.testing.assert_allclose(image.affine, source.affine)
        np.testing.assert_array_equal(np.asarray(image.dataobj), np.asarray(source.dataobj))
        ours = np.asarray(nib.load(str(outdir / name / "labels.nii.gz")).dataobj)
        np.testing.assert_array_equal(np.asarray(exported.dataobj), np.where(ours == 5, 4, ours))


def test_cluster_of_two_processes_gives_identical_outputs(data, local, tmp_path):
    """The same cases on a LocalCluster(2), through the installed command line (a subprocess)."""
    outdir = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "napari_sammed.cli", "batch", str(data / "sammed2d.json"), str(outdir),
                           "--kind", "weight-free", "--cluster", "local:2"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "2 of 3 cases done, 1 failed" in done.stdout
    rows, local_rows = summary(outdir), summary(local[0])
    assert rows["broken"]["status"] == "error" and rows["broken"]["error"] == local_rows["broken"]["error"]
    for name in SAMPLES:
        assert rows[name]["status"] == "ok"
        for column in ("objects", "mean_predicted_iou"):
            assert rows[name][column] == local_rows[name][column]
        np.testing.assert_array_equal(np.asarray(nib.load(str(outdir / name / "labels.nii.gz")).dataobj),
                                      np.asarray(nib.load(str(local[0] / name / "labels.nii.gz")).dataobj))
        assert (outdir / name / "qc.csv").read_text() == (local[0] / name / "qc.csv").read_text()
        for m in ("seg_prior", "boundary_prior", "augmented"):
            np.testing.assert_array_equal(tifffile.imread(outdir / name / "samaug" / f"{name}_{m}.tif"),
                                          tifffile.imread(local[0] / name / "samaug" / f"{name}_{m}.tif"))
        record = json.loads((outdir / name / "done.json").read_text())
        assert record["pid"] != os.getpid() and record["engine_loads_in_process"] == 1  # once per worker
    # the SAM-Med2D dataset, assembled by the driver from both cases, reads back
    dataset = outdir / "export" / "AbdomenSAM"
    train = json.loads((dataset / "image2label_train.json").read_text())
    assert json.loads((dataset / "label2image_test.json").read_text()) == {}
    cases = {Path(k).name.rsplit("_", 1)[0] for k in train}
    assert cases == {"ct", "mr"}
    for image, masks in train.items():
        assert (dataset.parent / image).is_file() and masks
        assert all((dataset.parent / m).is_file() for m in masks)
    classes = {Path(m).stem.split("_", 2)[2].rsplit("_", 1)[0] for ms in train.values() for m in ms}
    assert classes == {"spleen", "kidney_right", "kidney_left", "liver"}
    provenance = json.loads((dataset / "napari_sammed_provenance.json").read_text())
    assert set(provenance["cases"]) == {"ct", "mr"}


def test_rerun_skips_finished_cases_and_picks_up_a_fixed_one(data, local):
    outdir = local[0]
    stamps = {n: (outdir / n / "done.json").stat().st_mtime_ns for n in SAMPLES}
    labels_stamp = (outdir / "ct" / "labels.nii.gz").stat().st_mtime_ns
    code, printed, _ = run_cli(["batch", str(data / "nnunet.yaml"), str(outdir), "--kind", "weight-free"])
    assert code == 1
    rows = summary(outdir)
    assert rows["ct"]["status"] == rows["mr"]["status"] == "cached" and rows["broken"]["status"] == "error"
    assert {n: (outdir / n / "done.json").stat().st_mtime_ns for n in SAMPLES} == stamps
    assert (outdir / "ct" / "labels.nii.gz").stat().st_mtime_ns == labels_stamp
    assert json.loads((outdir / "export" / "Dataset012_Abdomen" / "dataset.json").read_text())["numTraining"] == 2

    shutil.copy(data / "images" / "ct.nii.gz", data / "images" / "broken.nii.gz")  # the file is fixed
    code, printed, _ = run_cli(["batch", str(data / "nnunet.yaml"), str(outdir), "--kind", "weight-free"])
    assert code == 0, printed
    rows = summary(outdir)
    assert [rows[n]["status"] for n in ("ct", "mr", "broken")] == ["cached", "cached", "ok"]
    assert (outdir / "ct" / "labels.nii.gz").stat().st_mtime_ns == labels_stamp
    fixed = np.asarray(nib.load(str(outdir / "broken" / "labels.nii.gz")).dataobj)  # the CT, percentile window
    assert fixed.shape == nib.load(str(outdir / "ct" / "labels.nii.gz")).shape and 5 in np.unique(fixed)
    assert json.loads((outdir / "export" / "Dataset012_Abdomen" / "dataset.json").read_text())["numTraining"] == 3


def test_export_only_plan_reuses_earlier_labels(data, local, tmp_path):
    """steps: [export] with labels from the plan: no model is loaded, the dataset is written."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"steps: [export]\nexport: {{format: tiff}}\ncases:\n"
                    f"  - {{name: mr, image: {data / 'images' / 'mr.nii.gz'}, labels: {local[0] / 'mr' / 'labels.nii.gz'}}}\n")
    # a "checkpoint" that is no model: an export-only plan never loads one
    code, printed, _ = run_cli(["batch", str(plan), str(tmp_path / "out"), "--checkpoint", str(plan)])
    assert code == 0, printed
    exported = tifffile.imread(tmp_path / "out" / "export" / "mr_labels.tif")
    np.testing.assert_array_equal(exported, displayed(local[0] / "mr" / "labels.nii.gz"))  # TIFF: as shown


BAD_PLANS = {
    "syntax": ("steps: [propagate\n", "not valid YAML"),
    "not-a-mapping": ("- just a list\n", "expected a mapping"),
    "unknown-key": ("cases: [{name: a, image: images/ct.nii.gz, seeds: seeds/ct.nii.gz}]\nstpes: [export]\n",
                    "stpes: Extra inputs are not permitted"),
    "order": ("steps: [export, propagate]\nexport: {format: nnunet}\n"
              "cases: [{name: a, image: images/ct.nii.gz, seeds: seeds/ct.nii.gz}]\n", "steps run in the order"),
    "no-export-block": ("steps: [propagate, export]\ncases: [{name: a, image: images/ct.nii.gz, seeds: seeds/ct.nii.gz}]\n",
                        "needs an export block"),
    "duplicate": ("cases: [{name: a, image: images/ct.nii.gz, seeds: seeds/ct.nii.gz},"
                  " {name: A, image: images/mr.nii.gz, seeds: seeds/mr.nii.gz}]\n", "appears twice"),
    "missing-file": ("cases: [{name: a, image: images/nope.nii.gz, seeds: seeds/ct.nii.gz}]\n",
                     "no such file: a.image images/nope.nii.gz"),
    "no-seeds": ("cases: [{name: a, image: images/ct.nii.gz}]\n", "case 'a': the propagate step needs seeds"),
    "bad-name": ("cases: [{name: ../x, image: images/ct.nii.gz, seeds: seeds/ct.nii.gz}]\n", "cases.0 (../x).name"),
    "bad-window": ("window: ct-liver\ncases: [{name: a, image: images/ct.nii.gz, seeds: seeds/ct.nii.gz}]\n",
                   "unknown window 'ct-liver'"),
    "no-cases": ("steps: [propagate]\ncases: []\n", "cases: List should have at least 1 item"),
    "bad-format": ("steps: [propagate, export]\nexport: {format: dicom}\n"
                   "cases: [{name: a, image: images/ct.nii.gz, seeds: seeds/ct.nii.gz}]\n", "export.format"),
}


@pytest.mark.parametrize("problem", sorted(BAD_PLANS))
def test_bad_plan_exits_2_with_one_line(data, tmp_path, problem):
    text, expected = BAD_PLANS[problem]
    plan = data / f"bad-{problem}.yaml"
    plan.write_text(text)
    code, _, err = run_cli(["batch", str(plan), str(tmp_path / "out"), "--kind", "weight-free"])
    assert code == 2
    assert err.startswith(f"napari-sammed batch: error: {plan}: ") and expected in err, err
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # nothing ran


@pytest.mark.parametrize("args, expected", [(["--cluster", "remote:2"], "--cluster takes local:N"),
                                            (["--checkpoint", "/no/such.pth"], "no such checkpoint")])
def test_bad_options_exit_2(data, tmp_path, args, expected):
    code, _, err = run_cli(["batch", str(data / "nnunet.yaml"), str(tmp_path / "out"), *args])
    assert code == 2 and expected in err


def test_engine_loaded_once_per_process_and_embeddings_bounded(tmp_path):
    from napari_sammed.core.io.read import read_volume
    from napari_sammed.core.io.windowing import resolve_window
    from napari_sammed.core.jobs.batch import ModelConfig, engine_for, engine_loads
    from napari_sammed.core.volume.embeddings import VolumeEmbeddings

    model = ModelConfig(kind="weight-free", batch_size=3)
    engine = engine_for(model)
    assert engine_for(model) is engine and engine_loads(model) == 1
    data = read_volume(PACKAGE_DATA / SAMPLES["ct"][0]).data
    window = resolve_window(data, "ct-abdomen")
    bounded = VolumeEmbeddings(engine, data, window, "z", tmp_path / "cache", memory_slices=4)
    bounded.compute()
    assert len(bounded._memory) == 4
    everything = VolumeEmbeddings(engine, data, window, "z")
    for k in (0, 17, 29):
        np.testing.assert_array_equal(bounded.get(k).numpy(), everything.get(k).numpy())
    assert len(bounded._memory) <= 4
