"""Read volumes (NIfTI, DICOM series, TIFF, zarr) as (Z, Y, X) arrays that keep their geometry.

NIfTI and DICOM volumes come in the radiological display order (see :mod:`.orientation`); the
source affine and voxel order are kept so exports write the exact source geometry back.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .inputs import InputError, InputWarning
from .orientation import LPS_TO_RAS, display_spacing, source_axcodes, to_display

NIFTI_SUFFIXES = (".nii", ".nii.gz")
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: The most voxels a header may declare (~4 GB of int16); a whole-body CT is ~10^8.
MAX_VOXELS = 2**31
#: The most one byte of a gzip (deflate) stream can expand to.
DEFLATE_MAX_RATIO = 1032


@dataclass
class Volume:
    """Voxels and the geometry they came with (spacing, affine, source format)."""

    data: np.ndarray  # (Z, Y, X) or (Y, X), in display order
    spacing: tuple[float, ...]  # per array axis, in mm (or the file's units)
    affine: np.ndarray | None = None  # 4x4 voxel (i, j, k) -> world, of the *source* file's voxel order
    source: str | None = None
    source_format: str | None = None
    metadata: dict = field(default_factory=dict)

    def layer_metadata(self) -> dict:
        """What a napari layer's ``metadata`` keeps for exports."""
        meta = {"spacing": list(self.spacing), "source": self.source, "source_format": self.source_format}
        if self.affine is not None:
            meta["affine"] = np.asarray(self.affine).tolist()
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
    """Whether ``path`` names a NIfTI file (``.nii`` or ``.nii.gz``)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def is_zarr(path: str | Path) -> bool:
    """Whether ``path`` names a zarr store."""
    path = Path(path)
    return path.name.lower().endswith(".zarr") or (path.is_dir() and (path / "zarr.json").exists())


def read_volume(path: str | Path) -> Volume:
    """Read any supported file or folder; raises ``InputError`` ("<file>: <what>") otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    name = path.name.lower()
    if is_nifti(name):
        return read_nifti(path)
    if name.endswith(TIFF_SUFFIXES):
        return read_tiff(path)
    if is_zarr(path):
        return read_zarr(path)
    if path.is_dir() or name.endswith(".dcm"):
        return read_dicom_series(path if path.is_dir() else path.parent)
    raise InputError(path, "unsupported file type (use NIfTI, DICOM, TIFF or zarr)")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def check_voxel_count(path: Path, shape: tuple[int, ...], itemsize: int, available: int | None = None,
                      ratio: int = 1) -> None:
    """Refuse, before allocating, a header whose declared voxels the file cannot hold.

    ``available``: bytes the file has for voxel data (None: unknown); ``ratio``: the most a byte
    of it can expand to (1 for raw data, ~1032 for gzip's deflate).
    """
    count = int(np.prod([int(s) for s in shape], dtype=object)) if shape else 0
    if any(int(s) <= 0 for s in shape):
        raise InputError(path, f"header declares shape {tuple(shape)}: an empty image")
    if count > MAX_VOXELS:
        raise InputError(path, f"header declares shape {tuple(shape)} = {count:,} voxels, more than the "
                               f"{MAX_VOXELS:,} this tool reads; the header is wrong or the image too large")
    if available is not None and count * itemsize > available * ratio:
        held = "holds" if ratio == 1 else f"can hold at most {available * ratio:,} bytes compressed in"
        raise InputError(path, f"header declares shape {tuple(shape)} = {count * itemsize:,} bytes of voxels but "
                               f"the file {held} {available:,} bytes: truncated, or the header is wrong")


def read_nifti(path: Path) -> Volume:
    """A NIfTI file as a (Z, Y, X) :class:`Volume` (sizes checked before reading)."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        shape, itemsize = tuple(img.shape), img.get_data_dtype().itemsize
    except Exception as error:  # noqa: BLE001 - nibabel raises many types for bad files
        raise InputError(path, f"cannot read NIfTI: {_first_line(error)}") from None
    if len(shape) not in (2, 3):
        raise InputError(path, f"expected a 2D or 3D image, got shape {shape}")
    size = path.stat().st_size
    if str(path).lower().endswith(".gz"):
        check_voxel_count(path, shape, itemsize, size, DEFLATE_MAX_RATIO)
    else:
        offset = max(int(img.header.get_data_offset()), int(getattr(img.header, "sizeof_hdr", 348)) + 4)
        check_voxel_count(path, shape, itemsize, max(size - offset, 0))
    try:
        data = np.asarray(img.dataobj)
    except Exception as error:  # noqa: BLE001
        raise InputError(path, f"cannot read NIfTI: {_first_line(error)}") from None
    zooms = tuple(float(z) for z in img.header.get_zooms()[: data.ndim])
    axcodes = source_axcodes(img.affine) if data.ndim == 3 else None
    return Volume(
        np.ascontiguousarray(to_display(data.T, axcodes)), display_spacing(zooms[::-1], axcodes),
        np.asarray(img.affine), str(path), "nifti",
        {"nifti_dtype": str(img.get_data_dtype()), "source_axcodes": list(axcodes) if axcodes else None},
    )


def read_tiff(path: Path) -> Volume:
    """A TIFF file as a :class:`Volume` (sizes checked before reading)."""
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tif:
            series = tif.series[0]
            check_voxel_count(path, tuple(series.shape), np.dtype(series.dtype).itemsize)
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
            shaped = tif.shaped_metadata[0] if tif.shaped_metadata else {}
            if isinstance(shaped.get("spacing"), list) and len(shaped["spacing"]) == data.ndim:
                spacing = [float(v) for v in shaped["spacing"]]  # written by write_tiff for >16-bit labels
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - tifffile raises many types for bad files
        raise InputError(path, f"cannot read TIFF: {_first_line(error)}") from None
    return Volume(data, tuple(spacing), None, str(path), "tiff")


def read_zarr(path: Path) -> Volume:
    """A zarr array (or a group's ``labels``/``image``/first array) as a :class:`Volume`."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Group):
            names = [k for k, v in node.arrays()]
            if not names:
                raise InputError(path, "zarr group has no arrays")
            node = node[names[0]]
        check_voxel_count(path, tuple(node.shape), np.dtype(node.dtype).itemsize)
        data = np.asarray(node[:])
        spacing = tuple(float(s) for s in node.attrs.get("spacing", [1.0] * data.ndim))
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - zarr raises many types for bad stores
        raise InputError(path, f"cannot read zarr: {_first_line(error)}") from None
    return Volume(data, spacing, None, str(path), "zarr")


def _series_key(ds) -> str:
    return str(getattr(ds, "SeriesInstanceUID", "") or "(no SeriesInstanceUID)")


def read_dicom_series(folder: Path) -> Volume:
    """One series from ``folder``: grouped by SeriesInstanceUID, the largest taken (with a
    :class:`InputWarning` naming the others); gaps and duplicate positions are refused."""
    import pydicom

    series: dict[str, list] = {}
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(str(file))
        except Exception:  # noqa: BLE001 - skip non-DICOM files in the folder
            continue
        if "PixelData" in ds:
            series.setdefault(_series_key(ds), []).append(ds)
    if not series:
        raise InputError(folder, "no DICOM images")
    ranked = sorted(series.items(), key=lambda kv: (-len(kv[1]), int(getattr(kv[1][0], "SeriesNumber", 0) or 0), kv[0]))
    uid, slices = ranked[0]
    if len(ranked) > 1:
        others = ", ".join(f"{u} ({len(s)} images)" for u, s in ranked[1:])
        warnings.warn(InputWarning(folder, f"{len(ranked)} DICOM series in one folder; reading the largest, "
                                           f"{uid} ({len(slices)} images), and ignoring {others}"), stacklevel=2)
    try:
        row, col = (np.array(slices[0].ImageOrientationPatient[:3], float),
                    np.array(slices[0].ImageOrientationPatient[3:], float))
        normal = np.cross(row, col)
        positions = {id(ds): float(np.dot(normal, np.array(ds.ImagePositionPatient, float))) for ds in slices}
        dy, dx = (float(v) for v in slices[0].PixelSpacing)
    except (AttributeError, TypeError, ValueError) as error:
        raise InputError(folder, f"series {uid}: missing or bad geometry tags ({_first_line(error)})") from None
    slices.sort(key=lambda ds: positions[id(ds)])
    shapes = {(int(ds.Rows), int(ds.Columns)) for ds in slices}
    if len(shapes) > 1:
        raise InputError(folder, f"series {uid}: slices of different sizes {sorted(shapes)}")
    along = np.array([positions[id(ds)] for ds in slices])
    _check_spacing(folder, uid, along)
    check_voxel_count(folder, (len(slices), *shapes.pop()), 8)
    try:
        data = np.stack([
            ds.pixel_array * float(getattr(ds, "RescaleSlope", 1)) + float(getattr(ds, "RescaleIntercept", 0))
            for ds in slices
        ])
    except Exception as error:  # noqa: BLE001 - pydicom raises many types for bad pixel data
        raise InputError(folder, f"series {uid}: cannot decode pixel data ({_first_line(error)})") from None
    if all(float(getattr(ds, "RescaleSlope", 1)).is_integer() for ds in slices) and data.min() >= -32768 and data.max() < 32768:
        data = data.astype(np.int16)
    positions_xyz = np.array([ds.ImagePositionPatient for ds in slices], float)
    dz = float(np.median(np.diff(along))) if len(slices) > 1 else float(getattr(slices[0], "SliceThickness", 1.0))
    # DICOM is LPS; the affine maps (col, row, slice) indices to LPS millimetres.
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = row * dx, col * dy, normal * dz
    affine[:3, 3] = positions_xyz[0]
    axcodes = source_axcodes(LPS_TO_RAS @ affine)
    return Volume(np.ascontiguousarray(to_display(data, axcodes)), display_spacing((abs(dz), dy, dx), axcodes),
                  affine, str(folder), "dicom",
                  {"affine_space": "LPS", "series_instance_uid": uid,
                   "source_axcodes": list(axcodes) if axcodes else None})


def _check_spacing(folder: Path, uid: str, along: np.ndarray) -> None:
    """Refuse duplicate slice positions and gaps (a step over 1.5x the typical one)."""
    if len(along) < 2:
        return
    steps = np.diff(along)
    step = float(np.median(steps))
    duplicates = [float(along[i]) for i in np.flatnonzero(steps < 1e-3 * max(abs(step), 1e-6))]
    if duplicates or step <= 0:
        raise InputError(folder, f"series {uid}: two slices at position(s) "
                                 f"{', '.join(f'{p:.2f}' for p in duplicates)} mm; is it two series with one UID?")
    missing = []
    for i in np.flatnonzero(steps > 1.5 * step):
        n = int(round(steps[i] / step)) - 1
        missing += [float(along[i] + step * (k + 1)) for k in range(max(n, 1))]
    if missing:
        shown = ", ".join(f"{p:.2f}" for p in missing[:10]) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        raise InputError(folder, f"series {uid} has a gap: no slice at position(s) {shown} mm along the slice "
                                 f"normal (step {step:.2f} mm, {len(along)} slices); refusing a volume with missing slices")
