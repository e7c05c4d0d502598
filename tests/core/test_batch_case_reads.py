"""Issue 25 item 4: one batch case reads its image once and hashes it once; propagate and SAMAug
share one VolumeEmbeddings, and the QC CSV the case wrote is not parsed back. The export runs
later in the driver (after every case, possibly of another process or an earlier run): its only
link to the case is the files, so it reads the image, the labels and the QC CSV once each."""

from __future__ import annotations

import shutil
import sys

import numpy as np

import napari_sammed.core.export.case as export_case_module
import napari_sammed.core.io.qc as qc_module
import napari_sammed.core.io.read as read_module
import napari_sammed.core.volume.embeddings as embeddings_module
from napari_sammed.core.jobs.batch import ModelConfig, run_batch
from napari_sammed.core.jobs.plan import load_plan
from tests.conftest import PACKAGE_DATA


def test_a_case_reads_and_hashes_its_image_once(tmp_path, monkeypatch):
    shutil.copy(PACKAGE_DATA / "example_ct_sm.nii.gz", tmp_path / "ct.nii.gz")
    read = read_module.read_volume
    seeds = read(tmp_path / "ct.nii.gz").data > 200  # a bright blob on the middle slice
    mask = np.zeros(seeds.shape, np.uint8)
    k = seeds.shape[0] // 2
    mask[k] = seeds[k]
    import nibabel as nib

    nib.save(nib.Nifti1Image(mask.T, np.eye(4)), str(tmp_path / "seeds.nii.gz"))
    (tmp_path / "plan.yaml").write_text(
        "steps: [propagate, samaug, export]\nexport: {format: tiff}\nsamaug: {points_per_side: 4}\n"
        "cases:\n  - {name: ct, image: ct.nii.gz, seeds: seeds.nii.gz}\n")
    plan = load_plan(tmp_path / "plan.yaml")

    reads, images, hashes, parsed = [], [], [], []

    def counting_read(path):
        volume = read(path)
        if str(path).endswith("ct.nii.gz"):
            reads.append(path)
            images.append(volume.data)
        return volume

    def counting_hash(original):
        def data_hash(array):
            if any(array is image for image in images):
                hashes.append(array.shape)
            return original(array)
        return data_hash

    for module in [m for name, m in sys.modules.items() if name.startswith("napari_sammed.")]:
        if getattr(module, "read_volume", None) is read:
            monkeypatch.setattr(module, "read_volume", counting_read)
    monkeypatch.setattr(embeddings_module, "data_hash", counting_hash(embeddings_module.data_hash))
    monkeypatch.setattr(export_case_module, "data_hash", counting_hash(export_case_module.data_hash))
    parse = qc_module.read_trace_csv
    for module in [m for name, m in sys.modules.items() if name.startswith("napari_sammed.")]:
        if getattr(module, "read_trace_csv", None) is parse:  # every name bound to it, whatever imported first
            monkeypatch.setattr(module, "read_trace_csv", lambda *a, **k: parsed.append(a) or parse(*a, **k))

    # the case itself (propagate + SAMAug) in the worker; the export in the driver reads it again
    from napari_sammed.core.jobs import batch

    case_reads, case_parses = [], []
    run_case = batch.run_case
    monkeypatch.setattr(batch, "run_case", lambda *a, **k: (
        run_case(*a, **k), case_reads.append(len(reads)), case_parses.append(len(parsed)))[0])
    result = run_batch(plan, tmp_path / "out", ModelConfig(kind="weight-free"), progress=False)
    assert [r["status"] for r in result.rows] == ["ok"], result.rows
    assert case_reads == [1], f"the case read its image {case_reads} times"
    assert len(reads) == 2, "the driver's export reads the image once more (and only once)"
    assert len(hashes) == 1, f"the image was hashed {len(hashes)} times"
    assert case_parses == [0], "the case parsed back the QC CSV it wrote"
    assert [p[0].name for p in parsed] == ["qc.csv"]  # the driver's export, once
