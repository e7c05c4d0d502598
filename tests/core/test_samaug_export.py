"""SAMAug priors in training exports: nnU-Net channels and SAM-Med2D images, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_sammed.core.engine.samaug_priors import augmented_uint8
from tests.conftest import PACKAGE_DATA, displayed
from tests.core.test_export import read_sammed2d, validate_nnunet_dataset

CT, SEG = PACKAGE_DATA / "example_ct_sm.nii.gz", PACKAGE_DATA / "example_seg.nii.gz"
NAMES = "1=spleen,2=kidney_right,3=kidney_left,5=liver"


def cli(*argv, cwd) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "napari_sammed.cli", *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    """What `napari-sammed samaug` writes for the sample CT (the weight-free engine: fast, deterministic)."""
    folder = tmp_path_factory.mktemp("maps")
    cli("samaug", CT, folder / "maps", "--kind", "weight-free", cwd=folder)
    return {m: tifffile.imread(folder / "maps" / f"example_ct_sm_{m}.tif")
            for m in ("seg_prior", "boundary_prior", "augmented")} | {"folder": folder / "maps"}


def only_organs(tmp_path):
    """The sample labels with the four organs only, saved as napari-sammed writes labels."""
    from napari_sammed.core.io.read import read_volume
    from napari_sammed.core.io.write import write_volume

    seg = read_volume(SEG)
    organs = np.where(np.isin(seg.data, [1, 2, 3, 5]), seg.data, 0).astype(np.uint8)
    return write_volume(tmp_path / "organs.nii.gz", organs, seg.layer_metadata())


@pytest.mark.parametrize("reuse", [True, False])
def test_nnunet_export_with_samaug_channels_reads_back(tmp_path, maps, reuse):
    labels = only_organs(tmp_path)
    extra = ["--samaug-dir", maps["folder"]] if reuse else []
    done = cli("export", CT, labels, tmp_path / "raw", "--format", "nnunet", "--samaug-channels", "--case", "ct",
               "--class-names", NAMES, "--dataset-id", 5, "--dataset-name", "Priors", "--kind", "weight-free",
               *extra, cwd=tmp_path)
    assert ("SAMAug priors reused" in done.stderr) == reuse
    folder = tmp_path / "raw" / "Dataset005_Priors"
    info = json.loads((folder / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "CT", "1": "samaug_seg_prior", "2": "samaug_boundary_prior"}
    assert info["numTraining"] == 1 and info["labels"]["liver"] == 4
    validate_nnunet_dataset(folder)
    source = nib.load(str(CT))
    for c in range(3):
        channel = nib.load(str(folder / "imagesTr" / f"ct_{c:04d}.nii.gz"))
        assert channel.shape == source.shape
        np.testing.assert_array_equal(channel.affine, source.affine)
        assert channel.header.get_zooms() == source.header.get_zooms()
    np.testing.assert_array_equal(np.asarray(nib.load(str(folder / "imagesTr" / "ct_0000.nii.gz")).dataobj),
                                  np.asarray(source.dataobj))  # the image channel is the image, untouched
    # The priors, turned back to what napari shows, are exactly the SAMAug command's maps.
    np.testing.assert_array_equal(displayed(folder / "imagesTr" / "ct_0001.nii.gz"), maps["seg_prior"])
    np.testing.assert_array_equal(displayed(folder / "imagesTr" / "ct_0002.nii.gz"), maps["boundary_prior"])
    made_by = json.loads((folder / "napari_sammed_provenance.json").read_text())["cases"]["ct"]["samaug"]
    assert made_by["engine"]["kind"] == "weight-free" and made_by["window"] == {"low": -160.0, "high": 240.0}
    assert ("reused_from" in made_by) == reuse


def test_sammed2d_export_with_samaug_images_keeps_masks_and_swaps_images(tmp_path, maps):
    labels = only_organs(tmp_path)
    common = ["--format", "sammed2d", "--case", "ct", "--class-names", NAMES, "--split", "train"]
    cli("export", CT, labels, tmp_path / "plain", *common, cwd=tmp_path)
    cli("export", CT, labels, tmp_path / "aug", *common, "--samaug-images", "--samaug-dir", maps["folder"],
        "--kind", "weight-free", cwd=tmp_path)
    plain, augmented = read_sammed2d(tmp_path / "plain"), read_sammed2d(tmp_path / "aug")
    assert plain.keys() == augmented.keys() and len(plain) > 10
    for stem in plain:
        assert plain[stem].keys() == augmented[stem].keys()
        for name in plain[stem]:
            np.testing.assert_array_equal(plain[stem][name], augmented[stem][name])  # masks identical
        k = int(stem.rsplit("_", 1)[1])
        image = np.asarray(Image.open(tmp_path / "aug" / "images" / f"{stem}.png"))
        np.testing.assert_array_equal(image, augmented_uint8(maps["augmented"][k]))  # SAMAug's augmented image
    for name in ("image2label_train.json", "label2image_test.json"):
        assert ((tmp_path / "plain" / name).read_text().replace("plain/", "")
                == (tmp_path / "aug" / name).read_text().replace("aug/", ""))


def test_samaug_options_belong_to_their_format(tmp_path):
    done = subprocess.run([sys.executable, "-m", "napari_sammed.cli", "export", str(CT), str(SEG), str(tmp_path / "o"),
                           "--format", "sammed2d", "--samaug-channels"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "SAMAug channels are an nnU-Net option" in done.stderr
    assert not (tmp_path / "o").exists()


def test_batch_plan_exports_priors_from_its_own_samaug_step(tmp_path):
    labels = only_organs(tmp_path)
    plan = tmp_path / "plan.yaml"
    plan.write_text("steps: [samaug, export]\n"
                    "export: {format: nnunet, dataset_id: 7, dataset_name: Batch, samaug_channels: true}\n"
                    "samaug: {points_per_side: 16}\n"
                    f"cases:\n  - {{name: ct, image: {CT}, labels: {labels}}}\n")
    cli("batch", plan, tmp_path / "out", "--kind", "weight-free", cwd=tmp_path)
    folder = tmp_path / "out" / "export" / "Dataset007_Batch"
    validate_nnunet_dataset(folder)
    maps = tmp_path / "out" / "ct" / "samaug"
    np.testing.assert_array_equal(displayed(folder / "imagesTr" / "ct_0001.nii.gz"),
                                  tifffile.imread(maps / "example_ct_sm_seg_prior.tif"))
    made_by = json.loads((folder / "napari_sammed_provenance.json").read_text())["cases"]["ct"]["samaug"]
    assert made_by["reused_from"].endswith("example_ct_sm_samaug.json")  # computed once, by the SAMAug step
    record = json.loads((tmp_path / "out" / "exported.json").read_text())["ct"]
    assert record["samaug"]["points_per_side"] == 16
    bad = tmp_path / "bad.yaml"
    bad.write_text(plan.read_text().replace("format: nnunet", "format: sammed2d"))
    done = subprocess.run([sys.executable, "-m", "napari_sammed.cli", "batch", str(bad), str(tmp_path / "o2")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "SAMAug channels are an nnU-Net option (format nnunet)" in done.stderr
