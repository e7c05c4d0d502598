"""Sizes a file declares are checked against what it holds before anything is allocated."""

from __future__ import annotations

import gzip
import resource

import nibabel as nib
import numpy as np
import pytest
import torch

from napari_sammed.core.model.checkpoints import CheckpointError, read_checkpoint
from tests.hostile.conftest import crafted_checkpoint, one_line_error, run

TERABYTE_OF_FLOATS = 2**38  # 1 TiB as float32


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_checkpoint_declaring_a_terabyte_is_refused_before_allocation(tmp_path, capsys, legacy):
    path = crafted_checkpoint(tmp_path / "crafted.pth", TERABYTE_OF_FLOATS, legacy=legacy)
    assert path.stat().st_size < 2000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, _, err = run(capsys, "info", "--checkpoint", path)
    assert code == 2
    fragment = ("tensor storage '0' declares 1,099,511,627,776 bytes but the file holds 64" if not legacy else
                "tensor storages declare 1,099,511,627,776 bytes but the file holds")
    one_line_error(err, "info", fragment, path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200_000  # kB: nothing big was touched


def test_checkpoint_storage_missing_from_the_archive(tmp_path):
    path = crafted_checkpoint(tmp_path / "c.pth", 4)
    import zipfile

    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "d.pth", "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("data/0"):
                dst.writestr(info, src.read(info))
    with pytest.raises(CheckpointError, match="tensor storage '0' is declared but missing from the file"):
        read_checkpoint(tmp_path / "d.pth")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_weights_are_refused_naming_the_first_key(tmp_path, capsys, bad):
    state = {"a.weight": torch.zeros(3), "b.weight": torch.tensor([1.0, bad]), "c.weight": torch.tensor([bad])}
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    code, _, err = run(capsys, "info", "--checkpoint", path)
    assert code == 2
    word = "NaN" if bad != bad else "infinite"
    one_line_error(err, "info", f"weight 'b.weight' holds {word} values (the first such key)", path)


def _nifti_header_only(path, shape, gz: bool):
    """A NIfTI whose header declares ``shape`` int16 but which holds 4 x 4 x 4 voxels (128 bytes)."""
    data = bytearray(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)).to_bytes())
    data[40:56] = np.array([3, *shape, 1, 1, 1, 1], np.int16).tobytes()  # dim[8]
    path.write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    return path


@pytest.mark.parametrize(("shape", "gz", "fragment"), [
    ((4000, 4000, 4000), True, "= 64,000,000,000 voxels, more than the 2,147,483,648 this tool reads"),
    ((1000, 1000, 1000), True, "bytes of voxels but the file can hold at most"),
    ((100, 100, 100), False, "= 2,000,000 bytes of voxels but the file holds 128 bytes"),
])
def test_nifti_header_declaring_more_than_the_file_holds(tmp_path, capsys, shape, gz, fragment):
    image = _nifti_header_only(tmp_path / ("big.nii.gz" if gz else "big.nii"), shape, gz)
    code, _, err = run(capsys, "embed", image, "--cache-dir", tmp_path / "cache", "--kind", "weight-free")
    assert code == 2
    one_line_error(err, "embed", fragment, image)
    assert not (tmp_path / "cache").exists()
