"""Issue 24, item 5: memory is bounded by what a file really holds and by the memory budget.

Every bomb is a few kB made in tmp_path and runs in a child under RLIMIT_AS (:mod:`.child`), so
a reader that allocates what the header declares fails the test instead of the machine.
"""

from __future__ import annotations

import gzip
import struct
import zlib

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.hostile.child import LIMIT, run_limited
from tests.hostile.conftest import one_line_error, run, write_dicom_series

BUDGET = "more than the memory budget of"


def zarr_bomb(path, shape, chunks, dtype):
    """A zarr v3 array's metadata only: no chunk is written (all are the fill value)."""
    import zarr

    zarr.create_array(store=str(path), shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
    return path


def tiff_bomb(path, width=65536, height=32768, tile=1024):
    """A float64 TIFF of width x height (16 GiB) whose tiles all point at one deflate stream."""
    stream = zlib.compress(bytes(tile * tile * 8), 9)
    count = (width // tile) * (height // tile)
    offsets_at = 8 + len(stream)
    counts_at = offsets_at + 4 * count
    ifd_at = counts_at + 4 * count
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 64), (259, 3, 1, 8), (262, 3, 1, 1),
            (277, 3, 1, 1), (284, 3, 1, 1), (322, 4, 1, tile), (323, 4, 1, tile), (324, 4, count, offsets_at),
            (325, 4, count, counts_at), (339, 3, 1, 3)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *t) for t in tags) + struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", ifd_at) + stream + struct.pack(f"<{count}I", *[8] * count)
                     + struct.pack(f"<{count}I", *[len(stream)] * count) + ifd)
    return path


def nifti_bomb(path, side=1280, padded=5_000_000):
    """A .nii.gz whose header declares side^3 int16 and which holds a tiny image, padded (sparsely)
    to a size whose deflate ratio could hold them."""
    data = bytearray(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)).to_bytes())
    data[40:56] = np.array([3, side, side, side, 1, 1, 1, 1], np.int16).tobytes()
    path.write_bytes(gzip.compress(bytes(data)))
    with open(path, "r+b") as f:
        f.truncate(padded)
    return path


class TestMemoryBudget:
    """Decoded size and chunk count are checked against the budget before any reader reads."""

    @pytest.mark.parametrize("kind", ["zarr", "tiff", "nifti"])
    def test_tiny_file_declaring_gigabytes_is_refused_by_the_budget(self, tmp_path, kind):
        if kind == "zarr":  # 365 bytes declaring 16 GiB of float64
            bomb = zarr_bomb(tmp_path / "bomb.zarr", (2048, 1024, 1024), (1, 1024, 1024), "float64")
        elif kind == "tiff":  # ~30 kB: 2048 tiles sharing one deflate stream, 16 GiB decoded
            bomb = tiff_bomb(tmp_path / "bomb.tif")
        else:  # 1280^3 int16 (4.2 GB) in a gzip the deflate ratio cannot rule out
            bomb = nifti_bomb(tmp_path / "bomb.nii.gz")
        done = run_limited("embed", bomb, "--cache-dir", tmp_path / "cache", "--kind", "weight-free")
        assert done.returncode == 2, done.stderr[-3000:]
        one_line_error(done.stderr, "embed", BUDGET, bomb)
        assert not (tmp_path / "cache").exists()

    def test_zarr_of_268_million_chunks_is_refused_before_reading(self, tmp_path):
        bomb = zarr_bomb(tmp_path / "chunks.zarr", (512, 512, 1024), (1, 1, 1), "uint8")  # 268 MB, 2**28 chunks
        done = run_limited("embed", bomb, "--cache-dir", tmp_path / "cache", "--kind", "weight-free", timeout=60)
        assert done.returncode == 2, done.stderr[-3000:]
        one_line_error(done.stderr, "embed", "is stored in 268,435,456 chunks of (1, 1, 1), more than the 1,048,576",
                       bomb)

    def test_budget_comes_from_the_address_space_limit_and_the_environment(self, monkeypatch):
        from napari_sammed.core.io.budget import format_size, memory_budget, parse_size

        done = run_limited(code="from napari_sammed.core.io.budget import memory_budget; print(memory_budget())")
        assert 0 < int(done.stdout) <= LIMIT
        monkeypatch.setenv("NAPARI_SAMMED_MEMORY_BUDGET", "1.5G")
        assert memory_budget() == 3 * 2**29 and format_size(memory_budget()) == "1.5 GiB"
        assert parse_size("512M") == 2**29 and parse_size("100") == 100

    def test_a_budget_that_is_no_size_is_one_line(self, tmp_path, capsys, case_files, monkeypatch):
        monkeypatch.setenv("NAPARI_SAMMED_MEMORY_BUDGET", "lots")
        code, _, err = run(capsys, "embed", case_files[0], "--cache-dir", tmp_path / "c", "--kind", "weight-free")
        assert code == 2
        one_line_error(err, "embed", "NAPARI_SAMMED_MEMORY_BUDGET='lots': give a size such as 512M or 8G")

    def test_budget_set_in_the_environment_refuses_a_real_volume(self, tmp_path, capsys, case_files, monkeypatch):
        monkeypatch.setenv("NAPARI_SAMMED_MEMORY_BUDGET", "10K")  # the 6 x 40 x 40 int16 image takes 19 kB, read twice
        image = case_files[0]
        code, _, err = run(capsys, "embed", image, "--cache-dir", tmp_path / "c", "--kind", "weight-free")
        assert code == 2
        one_line_error(err, "embed", "reading its 40 x 40 x 6 voxels of 2 bytes needs 37.5 KiB, more than the "
                                     "memory budget of 10.0 KiB (set NAPARI_SAMMED_MEMORY_BUDGET to change it)", image)


PEAK = """
import resource, sys
import numpy as np, pydicom
from napari_sammed.core.io.read import read_volume
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
volume = read_volume(sys.argv[1])
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(grown, volume.data.nbytes, volume.data.dtype, int(volume.data.min()), int(volume.data.max()))
"""


class TestDicomSliceBySlice:
    """DICOM is decoded one slice at a time into its target dtype, not through float64."""

    def test_deflated_series_peaks_near_its_own_size(self, tmp_path):
        folder = tmp_path / "deflated"  # 2 x 4096^2 int16 = 64 MiB of pixels in 66 kB of files
        write_dicom_series(folder, "1.2.3", [0.0, 2.5], -1024, "s", shape=(4096, 4096), deflated=True)
        done = run_limited(folder, code=PEAK)
        assert done.returncode == 0, done.stderr[-3000:]
        grown, nbytes, dtype, low, high = done.stdout.split()
        assert (dtype, int(low), int(high), int(nbytes)) == ("int16", -1024, -1023, 2 * 4096 * 4096 * 2)
        assert int(grown) < 4 * int(nbytes), f"peak {int(grown) / int(nbytes):.1f} x the pixel bytes"  # was 11.5 x

    def test_series_over_the_budget_is_refused_before_decoding(self, tmp_path, capsys, monkeypatch):
        folder = tmp_path / "series"
        write_dicom_series(folder, "1.2.3", [0.0, 2.5, 5.0], 0, "s", shape=(64, 64))
        monkeypatch.setenv("NAPARI_SAMMED_MEMORY_BUDGET", "20K")
        code, _, err = run(capsys, "embed", folder, "--cache-dir", tmp_path / "c", "--kind", "weight-free")
        assert code == 2
        one_line_error(err, "embed", "decoding 3 x 64 x 64 DICOM pixels needs", folder)

    def test_deflated_file_inflating_past_the_budget_is_refused_before_inflating(self, tmp_path, capsys,
                                                                               monkeypatch):
        folder = tmp_path / "inflating"
        write_dicom_series(folder, "1.2.3", [0.0, 2.5], 0, "s", shape=(1024, 1024), deflated=True)
        monkeypatch.setenv("NAPARI_SAMMED_MEMORY_BUDGET", "1M")  # each file inflates to 2 MiB
        code, _, err = run(capsys, "embed", folder, "--cache-dir", tmp_path / "c", "--kind", "weight-free")
        assert code == 2
        one_line_error(err, "embed", "inflating this deflated DICOM file needs", folder / "s000.dcm")


class TestCheckpointViews:
    """A checkpoint is judged by its views and its first bytes, not by what torch would allocate."""

    def test_expanded_view_is_refused(self, tmp_path):
        path = tmp_path / "expanded.pth"  # 1.5 kB: one NaN repeated 2**31 times (stride 0)
        torch.save({"image_encoder.pos_embed": torch.full((1,), float("nan")).expand(2**31)}, path)
        assert path.stat().st_size < 2000
        done = run_limited("info", "--checkpoint", path)  # was: 2 GiB for the NaN check; convert: 8 GiB
        assert done.returncode == 2, done.stderr[-3000:]
        one_line_error(done.stderr, "info", "(2147483648,) (2,147,483,648 elements) is an expanded view of storage "
                                            "'0' (1 elements, strides (0,))", path)

    def test_large_file_that_is_no_checkpoint_is_refused_before_hashing(self, tmp_path, capsys, case_files,
                                                                         monkeypatch):
        import napari_sammed.core.model.checkpoints as checkpoints

        def no_hashing(path):
            raise AssertionError(f"hashed {path}")

        monkeypatch.setattr(checkpoints, "sha256_file", no_hashing)
        big = tmp_path / "weights.pth"
        with open(big, "wb") as f:
            f.truncate(20 * 2**30)  # 20 GiB of zeros, sparse
        code, _, err = run(capsys, "embed", case_files[0], "--cache-dir", tmp_path / "c", "--checkpoint", big)
        assert code == 2, err
        one_line_error(err, "embed", "not a PyTorch or safetensors checkpoint", big)
