"""Builders for hostile inputs: tiny volumes, crafted checkpoints, DICOM series; CLI helpers."""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from napari_sammed.cli import main

SHAPE = (6, 40, 40)  # (Z, Y, X): small enough for the weight-free engine in well under a second


def tiny_image() -> np.ndarray:
    """int16 'CT': background 0, a bright 12 x 12 square through every slice, a little texture."""
    rng = np.random.default_rng(0)
    image = rng.integers(-20, 20, SHAPE).astype(np.int16)
    image[:, 14:26, 14:26] += 300
    return image


def tiny_labels() -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint8)
    labels[1:5, 14:26, 14:26] = 1
    labels[2:4, 30:36, 4:10] = 2
    return labels


def save_nifti(path: Path, zyx: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(np.ascontiguousarray(zyx.T), np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    return path


@pytest.fixture
def case_files(tmp_path) -> tuple[Path, Path]:
    return save_nifti(tmp_path / "img.nii.gz", tiny_image()), save_nifti(tmp_path / "lab.nii.gz", tiny_labels())


def run(capsys, *argv) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str, command: str, fragment: str, file: str | Path | None = None) -> None:
    """The CLI's bad-input contract: exactly one error line, ``napari-sammed <command>: error:
    <file>: ...``, after any status lines (``napari-sammed <command>: reading ...``)."""
    prefix = f"napari-sammed {command}: error: "
    lines = [line for line in err.splitlines() if line.strip() and "warning:" not in line]
    status = [line for line in lines[:-1] if line.startswith(f"napari-sammed {command}: ")]
    lines = [line for line in lines if line not in status or line.startswith(prefix)]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith(prefix), lines[0]
    if file is not None:
        assert lines[0].startswith(f"{prefix}{file}: "), lines[0]
    assert fragment in lines[0], lines[0]


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> digest): to show nothing changed."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---- crafted checkpoints ----------------------------------------------------------------------

class _Storage:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _Tensor:
    """Pickles as torch does: ``_rebuild_tensor_v2(storage, offset, size, stride, ...)``."""

    def __init__(self, storage: _Storage, shape: tuple[int, ...]) -> None:
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride = tuple(int(np.prod(self.shape[i + 1:])) for i in range(len(self.shape)))
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, 0, self.shape, stride, False, collections.OrderedDict()))


def _pickle(obj, legacy: bool) -> bytes:
    buffer = io.BytesIO()

    class Pickler(pickle.Pickler):
        def persistent_id(self, item):
            if isinstance(item, _Storage):
                base = ("storage", torch.FloatStorage, item.key, "cpu", item.numel)
                return base + (None,) if legacy else base
            return None

    Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def crafted_checkpoint(path: Path, declared: int, stored: int = 16, legacy: bool = False) -> Path:
    """A checkpoint whose pickle declares a float32 storage of ``declared`` elements while the
    file holds only ``stored`` of them (torch's zip layout, or the legacy pre-1.6 stream)."""
    storage = _Storage("0", declared)
    state = collections.OrderedDict({"image_encoder.pos_embed": _Tensor(storage, (declared,))})
    data = np.arange(stored, dtype=np.float32).tobytes()
    if legacy:
        parts = [pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2), pickle.dumps(1001, protocol=2),
                 pickle.dumps({"protocol_version": 1001, "little_endian": True,
                               "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2),
                 _pickle(state, legacy=True), pickle.dumps(["0"], protocol=2),
                 np.int64(stored).tobytes(), data]
        path.write_bytes(b"".join(parts))
        return path
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("ckpt/data.pkl", _pickle(state, legacy=False))
        archive.writestr("ckpt/byteorder", "little")
        archive.writestr("ckpt/data/0", data)
        archive.writestr("ckpt/version", "3\n")
    return path


# ---- DICOM -------------------------------------------------------------------------------------

def write_dicom_series(folder: Path, uid: str, positions: list[float], value: int, prefix: str,
                       shape: tuple[int, int] = (16, 16), series_number: int = 1, deflated: bool = False) -> None:
    """Axial CT slices of one series at the given z positions (mm), pixel value ``value`` (+ the
    slice number); ``deflated``: the Deflated Explicit VR transfer syntax (the dataset zlib-compressed)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        CTImageStorage,
        DeflatedExplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        generate_uid,
    )

    folder.mkdir(parents=True, exist_ok=True)
    for n, z in enumerate(positions):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian if deflated else ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = "CT", uid, series_number, n + 1
        ds.StudyInstanceUID = "1.2.3"
        ds.Rows, ds.Columns = shape
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, float(z)]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 2.5
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.full(shape, value + n, np.int16).tobytes()
        ds.save_as(str(folder / f"{prefix}{n:03d}.dcm"), enforce_file_format=True)
