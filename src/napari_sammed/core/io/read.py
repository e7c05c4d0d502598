"""Read volumes (NIfTI, DICOM series, TIFF, zarr) as (Z, Y, X) arrays that keep their geometry.

NIfTI and DICOM volumes come in the radiological display order (see :mod:`.orientation`); the
source affine and voxel order are kept so exports write the exact source geometry back. Every
reader checks, before decoding, what the header declares against what the file can hold and
against the memory budget (:mod:`.budget`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .budget import check_memory
from .dicom import read_dicom_series
from .error_text import first_line
from .orientation import display_spacing, source_axcodes, to_display

NIFTI_SUFFIXES = (".nii", ".nii.gz")
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: The most voxels a header may declare (~4 GB of int16); a whole-body CT is ~10^8.
MAX_VOXELS = 2**31
#: The most one byte of a gzip (deflate) stream can expand to.
DEFLATE_MAX_RATIO = 1032
#: The most chunks a zarr array may have: reading each costs ~0.1 ms, so 2**20 is minutes, and a
#: 354-byte store declaring 268 million one-voxel chunks would otherwise read for 11 hours.
MAX_CHUNKS = 2**20
#: Reading a volume holds about two copies of its voxels (decoded, then reordered for display).
READ_COPIES = 2


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
    """Read any supported file or folder; raises ``InputError`` ("<file>: <what>") otherwise.

    Boolean voxels come back as uint8; NaN or infinite voxels are refused."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    name = path.name.lower()
    if is_nifti(name):
        volume = read_nifti(path)
    elif name.endswith(TIFF_SUFFIXES):
        volume = read_tiff(path)
    elif is_zarr(path):
        volume = read_zarr(path)
    elif path.is_dir() or name.endswith(".dcm"):
        volume = read_dicom_series(path if path.is_dir() else path.parent)
    else:
        raise InputError(path, "unsupported file type (use NIfTI, DICOM, TIFF or zarr)")
    if volume.data.dtype == bool:
        volume.data = volume.data.view(np.uint8)  # a mask: 0 and 1
    check_finite_voxels(path, volume.data)
    return volume


def check_finite_voxels(path: Path, data: np.ndarray) -> None:
    """Refuse NaN or infinite voxels (windows, embeddings and exports have no meaning for them),
    one slice at a time so the check costs no copy of the volume."""
    if data.dtype.kind != "f":
        return
    bad, first = 0, None
    for z, plane in enumerate(data if data.ndim == 3 else data[None]):
        found = ~np.isfinite(plane)
        count = int(np.count_nonzero(found))
        if count and first is None:
            first = tuple(int(i) for i in ((z,) if data.ndim == 3 else ()) + tuple(np.argwhere(found)[0]))
        bad += count
    if bad:
        raise InputError(path, f"{bad:,} voxel(s) are NaN or infinite (the first at index {first}); replace them "
                               "with a number (e.g. the image's minimum) before using this image")


def check_dtype(path: Path, dtype: np.dtype, what: str = "voxels") -> None:
    """Refuse voxel types that are not numbers a window can map: complex, RGB records, text."""
    dtype = np.dtype(dtype)
    if dtype.fields is not None:
        raise InputError(path, f"{what} are records {dtype} (an RGB image?): convert it to one grey channel")
    if dtype.kind not in "biuf":
        raise InputError(path, f"{what} are of type {dtype}: expected integers or real numbers")


def check_voxel_count(path: Path, shape: tuple[int, ...], itemsize: int, available: int | None = None,
                      ratio: int = 1, copies: int = READ_COPIES) -> None:
    """Refuse, before allocating, a header whose declared voxels the file cannot hold, or whose
    reading (``copies`` times the decoded voxels; 0: checked by the caller) exceeds the budget.

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
    if copies:
        dims = " x ".join(str(int(s)) for s in shape)
        check_memory(path, count * itemsize * copies, f"reading its {dims} voxels of {itemsize} bytes")


def check_geometry(path: Path, spacing, affine=None) -> None:
    """Refuse a voxel spacing that is not a positive finite number, or an affine that is not finite:
    exports would write them into every file."""
    values = np.asarray(spacing, float)
    if not (np.all(np.isfinite(values)) and np.all(values > 0)):
        raise InputError(path, f"voxel spacing {tuple(float(v) for v in values)} is not positive and finite "
                               "(pixdim or resolution in the header)")
    if affine is not None and not np.all(np.isfinite(np.asarray(affine, float))):
        raise InputError(path, "the affine (voxel to world matrix) holds NaN or infinite values")


def read_nifti(path: Path) -> Volume:
    """A NIfTI file as a (Z, Y, X) :class:`Volume` (sizes checked before reading)."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        shape, itemsize = tuple(img.shape), img.get_data_dtype().itemsize
        zooms, affine = tuple(float(z) for z in img.header.get_zooms()[: len(shape)]), np.asarray(img.affine)
    except Exception as error:  # noqa: BLE001 - nibabel raises many types for bad files
        raise InputError(path, f"cannot read NIfTI: {first_line(error)}") from None
    if len(shape) not in (2, 3):
        raise InputError(path, f"expected a 2D or 3D image, got shape {shape}")
    check_dtype(path, img.get_data_dtype(), f"voxels (NIfTI datatype {img.header.get_value_label('datatype')})")
    check_geometry(path, zooms, affine)
    size = path.stat().st_size
    if str(path).lower().endswith(".gz"):
        check_voxel_count(path, shape, itemsize, size, DEFLATE_MAX_RATIO)
    else:
        offset = max(int(img.header.get_data_offset()), int(getattr(img.header, "sizeof_hdr", 348)) + 4)
        check_voxel_count(path, shape, itemsize, max(size - offset, 0))
    try:
        data = np.asarray(img.dataobj)
    except Exception as error:  # noqa: BLE001
        raise InputError(path, f"cannot read NIfTI: {first_line(error)}") from None
    axcodes = source_axcodes(affine) if data.ndim == 3 else None
    return Volume(
        np.ascontiguousarray(to_display(data.T, axcodes)), display_spacing(zooms[::-1], axcodes),
        affine, str(path), "nifti",
        {"nifti_dtype": str(img.get_data_dtype()), "source_axcodes": list(axcodes) if axcodes else None},
    )


def read_tiff(path: Path) -> Volume:
    """A TIFF file as a :class:`Volume` (sizes checked before reading)."""
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tif:
            series = tif.series[0]
            check_dtype(path, series.dtype)
            if len(series.shape) > 3 or len(series.shape) < 2:
                kind = "an RGB volume" if series.shape[-1:] in ((3,), (4,)) and len(series.shape) == 4 else "not 2D or 3D"
                raise InputError(path, f"TIFF of shape {tuple(series.shape)} (axes {series.axes}) is {kind}: "
                                       "give a grey (Z, Y, X) volume or a 2D image")
            check_voxel_count(path, tuple(series.shape), np.dtype(series.dtype).itemsize)
            data = tif.asarray()
            spacing = [1.0] * data.ndim
            ij = tif.imagej_metadata or {}
            page = tif.pages[0]
            if "XResolution" in page.tags and data.ndim >= 2:
                num, den = page.tags["XResolution"].value
                if num and den:  # a zero resolution means none was set
                    spacing[-1] = spacing[-2] = den / num
            if ij.get("spacing") and data.ndim == 3:
                spacing[0] = float(ij["spacing"])
            shaped = tif.shaped_metadata[0] if tif.shaped_metadata else {}
            if isinstance(shaped.get("spacing"), list) and len(shaped["spacing"]) == data.ndim:
                spacing = [float(v) for v in shaped["spacing"]]  # written by write_tiff for >16-bit labels
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - tifffile raises many types for bad files
        raise InputError(path, f"cannot read TIFF: {first_line(error)}") from None
    check_geometry(path, spacing)
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
        shape = tuple(int(s) for s in node.shape)
        check_dtype(path, node.dtype)
        if len(shape) not in (2, 3):
            raise InputError(path, f"expected a 2D or 3D array, got shape {shape}")
        check_voxel_count(path, shape, np.dtype(node.dtype).itemsize)
        check_chunk_count(path, shape, tuple(int(c) for c in node.chunks))
        data = np.asarray(node[:])
        spacing = tuple(float(s) for s in node.attrs.get("spacing", [1.0] * data.ndim))
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - zarr raises many types for bad stores
        raise InputError(path, f"cannot read zarr: {first_line(error)}") from None
    check_geometry(path, spacing)
    return Volume(data, spacing, None, str(path), "zarr")


def check_chunk_count(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...]) -> None:
    """Refuse an array cut into more than :data:`MAX_CHUNKS` chunks (each is a read and a decode)."""
    count = int(np.prod([-(-s // max(c, 1)) for s, c in zip(shape, chunks, strict=True)], dtype=object))
    if count > MAX_CHUNKS:
        raise InputError(path, f"array of shape {shape} is stored in {count:,} chunks of {chunks}, more than the "
                               f"{MAX_CHUNKS:,} this tool reads (hours of reading); re-chunk it, e.g. one chunk "
                               "per slice")


def read_image(path: str | Path, mode: str | None = None) -> np.ndarray:
    """A 2D image (PNG, JPEG, BMP) as an array: grey, RGB or RGBA, or converted to ``mode``
    ("L", "RGB"). Its pixel count is checked against the memory budget before it is decoded,
    and an unreadable or damaged file is one :class:`InputError`."""
    from PIL import Image

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the budget decides, below
            with Image.open(path) as image:
                mode = mode or _plain_mode(image)
                width, height = image.size
                itemsize = {"I;16": 2, "I": 4, "F": 4}.get(mode, 1) * Image.getmodebands(mode)
                check_memory(path, width * height * itemsize * READ_COPIES,
                             f"decoding its {width} x {height} pixels")
                return np.asarray(image if image.mode == mode else image.convert(mode))
    except InputError:
        raise
    except Image.DecompressionBombError as error:
        raise InputError(path, f"{first_line(error).split(', could be')[0]} (Pillow refuses such images as "
                               "possible decompression bombs)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # PIL: unidentified, truncated, corrupt
        raise InputError(path, f"cannot read image ({' '.join(first_line(error).split())})") from None


def _plain_mode(image) -> str:
    """The mode an image is read in: its own if grey, RGB(A) or 16/32-bit; palettes and others
    become RGB (RGBA with transparency), 1-bit black and white grey."""
    if image.mode in ("L", "RGB", "RGBA", "I;16", "I", "F"):
        return image.mode
    if image.mode == "1":
        return "L"
    return "RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB"
