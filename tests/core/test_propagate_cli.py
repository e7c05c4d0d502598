"""``napari-sammed propagate``: real CT in, labels with the source geometry and a QC trace out."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from napari_sammed.cli import main
from napari_sammed.core.io.orientation import source_axcodes, to_source
from napari_sammed.core.io.read import read_volume
from tests.conftest import PACKAGE_DATA, bbox_xyxy, dice, displayed

CT = PACKAGE_DATA / "example_ct_sm.nii.gz"
SEG = PACKAGE_DATA / "example_seg.nii.gz"
LIVER, KIDNEY_RIGHT = 5, 2


def reference() -> np.ndarray:
    return displayed(SEG)  # (Z, Y, X) as napari shows it; slice numbers below are these


def save_as_shown(path, zyx: np.ndarray, affine: np.ndarray, header=None) -> None:
    """Save a displayed-order volume as a NIfTI file of ``affine`` (as napari-sammed writes it)."""
    nib.save(nib.Nifti1Image(to_source(zyx, source_axcodes(affine)).T, affine, header), str(path))


def write_seeds(path, slices: dict[int, int], affine=None) -> np.ndarray:
    """A NIfTI label volume holding only the reference mask of ``organ`` on ``slice`` (Z index)."""
    ref = reference()
    seeds = np.zeros_like(ref)
    for organ, k in slices.items():
        seeds[k][ref[k] == organ] = organ
    source = nib.load(str(SEG))
    save_as_shown(path, seeds, source.affine if affine is None else affine, source.header)
    return seeds


def test_label_seeds_to_nifti_with_source_geometry(tmp_path, capsys):
    seeds = write_seeds(tmp_path / "seeds.nii.gz", {LIVER: 14, KIDNEY_RIGHT: 20})
    out = tmp_path / "out.nii.gz"
    assert main(["propagate", str(CT), str(tmp_path / "seeds.nii.gz"), str(out), "--window", "ct-abdomen", "--kind", "weight-free"]) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("  object 2:"))
    assert "slices 12-29" in line and "stopped: low_neighbour_iou at 11, volume_end at 29" in line
    image, source = nib.load(str(out)), nib.load(str(CT))
    np.testing.assert_array_equal(image.affine, source.affine)
    assert image.header.get_zooms() == source.header.get_zooms()
    assert int(image.header["sform_code"]) == int(source.header["sform_code"])
    labels = displayed(out)
    assert labels.dtype == np.uint8
    ref = reference()
    assert dice(labels == LIVER, ref == LIVER) >= 0.80
    assert dice(labels == KIDNEY_RIGHT, ref == KIDNEY_RIGHT) >= 0.80
    np.testing.assert_array_equal(labels[14][seeds[14] == LIVER], LIVER)  # seeds kept exactly
    rows = (tmp_path / "out_qc.csv").read_text().splitlines()
    assert rows[0].startswith("object_id,slice,source,predicted_iou")
    assert len(rows) - 1 >= 29 + 18
    trace = json.loads((tmp_path / "out_qc.json").read_text())
    assert trace["provenance"]["engine"]["kind"] == "weight-free" and trace["provenance"]["axis"] == "z"
    assert {e["reason"] for e in trace["front_ends"] if e["object_id"] == KIDNEY_RIGHT} == {"volume_end", "low_neighbour_iou"}


def test_the_report_says_a_front_stopped_at_max_steps(tmp_path, capsys):
    # Fronts that stop on a slice they did not judge (max_steps, another seed, the volume's end)
    # have no trace row: the printed summary takes them from the front ends.
    write_seeds(tmp_path / "seeds.nii.gz", {LIVER: 14})
    out = tmp_path / "out.nii.gz"
    assert main(["propagate", str(CT), str(tmp_path / "seeds.nii.gz"), str(out), "--window", "ct-abdomen",
                 "--kind", "weight-free", "--max-steps", "2"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("  object 5:"))
    assert "slices 12-16" in line and "max_steps at 12" in line and "max_steps at 16" in line, line


def test_json_prompts_and_stop_marker(tmp_path):
    ref = reference()
    box = bbox_xyxy(ref[15] == LIVER).tolist()
    spec = {"objects": {"5": {"15": {"box": box}}}, "stops": {"0": [[20]]}}
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(spec))
    out = tmp_path / "liver.tif"
    assert main(["propagate", str(CT), str(prompts), str(out), "--window", "ct-abdomen", "--kind", "weight-free"]) == 0
    volume = read_volume(out)
    assert volume.spacing == (3.0, 3.0, 3.0)
    liver = volume.data == LIVER
    present = np.flatnonzero(liver.any(axis=(1, 2)))
    assert present.max() == 19  # the stop marker on slice 20
    assert dice(liver[:20], ref[:20] == LIVER) >= 0.80


def test_spacing_never_distorts_prompts(tmp_path):
    """The same voxels with 0.8 x 0.8 x 3 mm voxels propagate identically, along z and along y."""
    source = nib.load(str(CT))
    anisotropic = np.diag([0.8, 0.8, 3.0, 1.0])
    nib.save(nib.Nifti1Image(np.asarray(source.dataobj), anisotropic), str(tmp_path / "ct_aniso.nii.gz"))
    ref = reference() == LIVER
    middle_y = int(np.flatnonzero(ref.any(axis=(0, 2))).mean())
    seeds = {"z": np.zeros(ref.shape, np.uint8), "y": np.zeros(ref.shape, np.uint8)}
    seeds["z"][15][ref[15]] = LIVER
    seeds["y"][:, middle_y][ref[:, middle_y]] = LIVER
    results = {}
    for name, image, affine in (("iso", CT, source.affine), ("aniso", tmp_path / "ct_aniso.nii.gz", anisotropic)):
        for axis in ("z", "y"):
            seed_file = tmp_path / f"seeds_{name}_{axis}.nii.gz"
            save_as_shown(seed_file, seeds[axis], affine)
            out = tmp_path / f"{name}_{axis}.zarr"
            args = ["propagate", str(image), str(seed_file), str(out), "--axis", axis, "--window", "ct-abdomen",
                    "--kind", "weight-free"]
            assert main(args) == 0
            results[name, axis] = read_volume(out)
    assert results["aniso", "z"].spacing == pytest.approx((3.0, 0.8, 0.8))
    for axis in ("z", "y"):
        np.testing.assert_array_equal(results["iso", axis].data, results["aniso", axis].data)
    along_y = results["iso", "y"].data == LIVER
    assert along_y.any(axis=(0, 2)).sum() > 20  # walked across many coronal slices
    assert dice(along_y, ref) >= 0.80


@pytest.mark.parametrize("problem", ["shape", "exists", "empty", "suffix", "bad-json", "ct-as-seeds"])
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, problem):
    seeds = tmp_path / "seeds.nii.gz"
    write_seeds(seeds, {LIVER: 15})
    out = tmp_path / "out.nii.gz"
    if problem == "shape":
        nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.uint8), np.eye(4)), str(seeds))
    elif problem == "exists":
        out.write_bytes(b"precious")
    elif problem == "empty":
        nib.save(nib.Nifti1Image(np.zeros(nib.load(str(SEG)).shape, np.uint8), np.eye(4)), str(seeds))
    elif problem == "suffix":
        out = tmp_path / "out.png"
    elif problem == "ct-as-seeds":
        seeds = CT
    else:
        seeds = tmp_path / "prompts.json"
        seeds.write_text("{not json")
    assert main(["propagate", str(CT), str(seeds), str(out)]) == 2
    message = capsys.readouterr().err
    expected = {"shape": "shape", "exists": "exists", "empty": "no seeds", "suffix": "cannot write",
                "bad-json": "prompts.json: not valid JSON",
                "ct-as-seeds": f"{CT}: labels must be non-negative"}[problem]
    assert expected in message
    if problem == "exists":
        assert out.read_bytes() == b"precious"
    else:
        assert not out.exists()
    assert not list(tmp_path.glob(".napari-sammed-*"))  # nothing half-written left behind
