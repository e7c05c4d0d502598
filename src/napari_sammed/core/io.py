"""Read volumes (NIfTI, DICOM series, TIFF, zarr) as (Z, Y, X) arrays that keep their geometry.

NIfTI voxel arrays are (i, j, k); we present them as (k, j, i) so that napari's first axis walks
axial slices, and keep the original affine so exports can write the exact source geometry back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NIFTI_SUFFIXES = (".nii", ".nii.gz")
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass
class Volume:
    data: np.ndarray  # (Z, Y, X) or (Y, X)
    spacing: tuple[float, ...]  # per array axis, in mm (or the file's units)
    affine: np.ndarray | None = None  # 4x4 voxel (i, j, k) -> world, of the *source* file
    source: str | None = None
    source_format: str | None = None
    metadata: dict = field(default_factory=dict)

    def layer_metadata(self) -> dict:
        """What a napari layer's ``metadata`` keeps for exports."""
        meta = {"spacing": list(self.spacing), "source": self.source, "source_format": self.source_format}
        if self.affine is not None:
            meta["affine"] = np.asarray(self.affine).tolist()
            meta["array_order"] = "kji"  # data is the source's (i, j, k) transposed
        meta.update(self.metadata)
        return meta


def file_stem(path: str | Path) -> str:
    """The name without its (possibly double) suffix: ``ct.nii.gz`` -> ``ct``."""
    path = Path(path)
    name = path.name
    for suffix in (*NIFTI_SUFFIXES, *TIFF_SUFFIXES, *IMAGE_SUFFIXES, ".zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def is_nifti(path: str | Path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def is_zarr(path: str | Path) -> bool:
    path = Path(path)
    return path.name.lower().endswith(".zarr") or (path.is_dir() and (path / "zarr.json").exists())


def read_volume(path: str | Path) -> Volume:
    """Read any supported file or folder; raises ``ValueError`` with a clear message otherwise."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"no such file or folder: {path}")
    name = path.name.lower()
    if is_nifti(name):
        return read_nifti(path)
    if name.endswith(TIFF_SUFFIXES):
        return read_tiff(path)
    if is_zarr(path):
        return read_zarr(path)
    if path.is_dir() or name.endswith(".dcm"):
        return read_dicom_series(path if path.is_dir() else path.parent)
    raise ValueError(f"unsupported file type: {path.name} (use NIfTI, DICOM, TIFF or zarr)")


def read_nifti(path: Path) -> Volume:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except Exception as error:  # noqa: BLE001 - nibabel raises many types for bad files
        raise ValueError(f"cannot read NIfTI {path.name}: {error}") from None
    if data.ndim not in (2, 3):
        raise ValueError(f"{path.name}: expected a 2D or 3D image, got shape {data.shape}")
    zooms = tuple(float(z) for z in img.header.get_zooms()[: data.ndim])
    return Volume(
        np.ascontiguousarray(data.T), zooms[::-1], np.asarray(img.affine), str(path), "nifti",
        {"nifti_dtype": str(img.get_data_dtype())},
    )


def read_tiff(path: Path) -> Volume:
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        data = tif.asarray()
        spacing = [1.0] * data.ndim
        ij = tif.imagej_metadata or {}
        page = tif.pages[0]
        if "XResolution" in page.tags and data.ndim >= 2:
            num, den = page.tags["XResolution"].value
            if num:
                spacing[-1] = spacing[-2] = den / num
        if ij.get("spacing") and data.ndim == 3:
            spacing[0] = float(ij["spacing"])
    return Volume(data, tuple(spacing), None, str(path), "tiff")


def read_zarr(path: Path) -> Volume:
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Group):
        names = [k for k, v in node.arrays()]
        if not names:
            raise ValueError(f"{path.name}: zarr group has no arrays")
        node = node[names[0]]
    data = np.asarray(node[:])
    spacing = tuple(float(s) for s in node.attrs.get("spacing", [1.0] * data.ndim))
    return Volume(data, spacing, None, str(path), "zarr")


def read_dicom_series(folder: Path) -> Volume:
    import pydicom

    slices = []
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(str(file))
        except Exception:  # noqa: BLE001 - skip non-DICOM files in the folder
            continue
        if "PixelData" in ds:
            slices.append(ds)
    if not slices:
        raise ValueError(f"no DICOM images in {folder}")
    row, col = (np.array(slices[0].ImageOrientationPatient[:3], float),
                np.array(slices[0].ImageOrientationPatient[3:], float))
    normal = np.cross(row, col)
    slices.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, float))))
    data = np.stack([
        ds.pixel_array * float(getattr(ds, "RescaleSlope", 1)) + float(getattr(ds, "RescaleIntercept", 0))
        for ds in slices
    ])
    if all(float(getattr(ds, "RescaleSlope", 1)).is_integer() for ds in slices) and data.min() >= -32768 and data.max() < 32768:
        data = data.astype(np.int16)
    positions = np.array([ds.ImagePositionPatient for ds in slices], float)
    dz = float(np.median(np.diff(positions @ normal))) if len(slices) > 1 else float(getattr(slices[0], "SliceThickness", 1.0))
    dy, dx = (float(v) for v in slices[0].PixelSpacing)
    # DICOM is LPS; the affine maps (col, row, slice) indices to LPS millimetres.
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = row * dx, col * dy, normal * dz
    affine[:3, 3] = positions[0]
    return Volume(data, (abs(dz), dy, dx), affine, str(folder), "dicom", {"affine_space": "LPS"})
