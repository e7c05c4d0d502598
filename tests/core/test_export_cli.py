"""``napari-sammed export`` on the real CT sample: every format, append, bad input."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from napari_sammed._sample_data import DATA
from napari_sammed.cli import main

CT, SEG = DATA / "example_ct_sm.nii.gz", DATA / "example_seg.nii.gz"


def organs_only(tmp_path):
    seg = nib.load(str(SEG))
    data = np.asarray(seg.dataobj)
    kept = np.where(np.isin(data, [1, 2, 3, 5]), data, 0).astype(np.uint8)
    path = tmp_path / "organs.nii.gz"
    nib.save(nib.Nifti1Image(kept, seg.affine, seg.header), str(path))
    return path


def test_export_nnunet_and_sammed2d_with_append(tmp_path, capsys):
    labels = organs_only(tmp_path)
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"1": "spleen", "2": "kidney_right", "3": "kidney_left", "5": "liver"}))
    raw = tmp_path / "nnUNet_raw"
    args = ["export", str(CT), str(labels), str(raw), "--format", "nnunet", "--dataset-id", "3",
            "--dataset-name", "Abdomen", "--class-names", str(names), "--case", "ct001"]
    assert main(args) == 0
    assert "5->4" in capsys.readouterr().out
    info = json.loads((raw / "Dataset003_Abdomen" / "dataset.json").read_text())
    assert info["labels"] == {"background": 0, "spleen": 1, "kidney_right": 2, "kidney_left": 3, "liver": 4}
    assert main(args) == 2 and "append" in capsys.readouterr().err
    assert main(args[:-1] + ["ct002", "--append"]) == 0
    assert json.loads((raw / "Dataset003_Abdomen" / "dataset.json").read_text())["numTraining"] == 2

    qc = tmp_path / "trace.csv"
    qc.write_text("object_id,slice,source,predicted_iou,neighbour_iou,area,direction,stop_reason\n"
                  "5,15,seed,,,900,0,\n5,16,propagated,0.9000,0.8000,880,1,\n")
    dataset = tmp_path / "sam" / "ct_demo"
    assert main(["export", str(CT), str(labels), str(dataset), "--format", "sammed2d", "--class-names",
                 "1=spleen,2=kidney right,3=kidney left,5=liver", "--window", "ct-abdomen", "--qc", str(qc),
                 "--split", "test"]) == 0
    test = json.loads((dataset / "label2image_test.json").read_text())
    assert any("_kidney_right_000.png" in k for k in test) and all(k.startswith("ct_demo/masks/") for k in test)
    assert (dataset / "qc" / "example_ct_sm_qc.csv").read_text().count("\n") == 3
    provenance = json.loads((dataset / "napari_sammed_provenance.json").read_text())["cases"]["example_ct_sm"]
    assert provenance["qc_trace_rows"] == 2 and provenance["window"] == {"low": -125.0, "high": 225.0}  # ct-abdomen, W350 L50
    assert str(CT) in provenance["sources"] and len(provenance["sources"][str(CT)]) == 64


def test_export_stacks_and_bad_input(tmp_path, capsys):
    labels = organs_only(tmp_path)
    assert main(["export", str(CT), str(labels), str(tmp_path / "stacks"), "--format", "tiff", "--include-image"]) == 0
    assert (tmp_path / "stacks" / "example_ct_sm_labels.tif").is_file()
    small = tmp_path / "small.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)), str(small))
    assert main(["export", str(CT), str(small), str(tmp_path / "out"), "--format", "sammed2d"]) == 2
    assert "shape" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main(["export", str(CT), str(labels), str(tmp_path / "x"), "--format", "png"]) == 0
    assert main(["export", str(CT), str(labels), str(tmp_path / "x"), "--format", "png"]) == 2
    assert "exists" in capsys.readouterr().err


def test_help_and_a_model_free_export_never_load_torch(tmp_path):
    # Importing torch costs about 2 s: a command that runs no model must not pay it.
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from napari_sammed.cli import main\n"
        "try:\n"
        "    main(['export', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"assert main(['export', {str(CT)!r}, {str(SEG)!r}, {str(tmp_path / 'stacks')!r}, '--format', 'tiff']) == 0\n"
        f"assert main(['export', {str(CT)!r}, {str(SEG)!r}, {str(tmp_path / 'x')!r}, '--format', 'nnunet', "
        "'--dataset-id', '0']) == 2\n"  # bad input: the error path neither
        "print('torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "stacks" / "example_ct_sm_labels.tif").is_file()
