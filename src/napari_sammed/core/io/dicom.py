"""A DICOM series as a (Z, Y, X) volume: its geometry checked, its pixels decoded slice by slice.

Headers are read first (pixel data deferred), so a folder's series, geometry and size are
known before any pixel is decoded; the volume is then filled one slice at a time in the
smallest dtype that holds the rescaled values exactly (int16 for CT), so reading peaks at about
the volume's final size instead of a float64 copy of every slice.
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..errors import InputError, InputWarning
from .budget import check_memory, memory_budget
from .error_text import first_line
from .orientation import LPS_TO_RAS, display_spacing, source_axcodes, to_display

#: The header fields a series is sorted, checked and decoded with.
HEADER_FIELDS = ("SeriesInstanceUID", "SeriesNumber", "ImageOrientationPatient", "ImagePositionPatient",
                 "PixelSpacing", "Rows", "Columns", "RescaleSlope", "RescaleIntercept", "BitsStored",
                 "BitsAllocated", "PixelRepresentation", "SliceThickness")
#: Two slice steps that differ by more than this share of the smallest one are uneven spacing.
STEP_TOLERANCE = 0.01
DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian: the whole dataset is zlib


def _series_key(ds) -> str:
    return str(getattr(ds, "SeriesInstanceUID", "") or "(no SeriesInstanceUID)")


def _check_inflated_size(file: Path) -> None:
    """A deflated file is inflated whole when read: refuse one that inflates beyond the budget
    (a deflate stream can grow 1000-fold), counting its size without keeping the output."""
    import pydicom

    try:
        meta = pydicom.filereader.read_file_meta_info(str(file))
        if str(meta.get("TransferSyntaxUID", "")) != DEFLATED or "FileMetaInformationGroupLength" not in meta:
            return
        start = 128 + 4 + 12 + int(meta.FileMetaInformationGroupLength)  # preamble, DICM, (0002,0000)
    except Exception:  # noqa: BLE001 - not DICOM or no file meta: dcmread decides
        return
    limit, total, inflater = memory_budget(), 0, zlib.decompressobj(-zlib.MAX_WBITS)
    with open(file, "rb") as f:
        f.seek(start)
        while (chunk := f.read(2**20)) and not inflater.eof:
            while chunk and not inflater.eof:  # after the stream's end: padding, not data
                try:
                    total += len(inflater.decompress(chunk, 2**24))
                except zlib.error:
                    return  # corrupt: dcmread says so
                chunk = inflater.unconsumed_tail
                if total > limit:
                    check_memory(file, total, "inflating this deflated DICOM file")


def _headers(folder: Path) -> dict[str, list[tuple[Path, SimpleNamespace]]]:
    """The folder's images as {series uid: [(file, the header fields used here)]}: only these
    are kept (a deflated file's whole dataset would stay in memory with its dataset)."""
    import pydicom

    series: dict[str, list] = {}
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        _check_inflated_size(file)
        try:
            ds = pydicom.dcmread(str(file), defer_size="1 KB")
        except Exception:  # noqa: BLE001 - skip non-DICOM files in the folder
            continue
        if "PixelData" in ds:
            header = SimpleNamespace(**{name: _plain(ds.get(name)) for name in HEADER_FIELDS})
            series.setdefault(_series_key(header), []).append((file, header))
    return series


def _plain(value):
    """A header value without pydicom's types (a MultiValue becomes a list)."""
    return list(value) if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue" else value


def _rescale(ds) -> tuple[float, float]:
    return float(getattr(ds, "RescaleSlope", 1) or 1), float(getattr(ds, "RescaleIntercept", 0) or 0)


def target_dtype(headers: list) -> np.dtype:
    """The dtype that holds every slice's ``stored * slope + intercept`` exactly: int16 or int32
    when the rescale is integer and the stored bits allow it, else float32."""
    low = high = 0.0
    for ds in headers:
        slope, intercept = _rescale(ds)
        if not (slope.is_integer() and intercept.is_integer()):
            return np.dtype(np.float32)
        bits = int(getattr(ds, "BitsStored", 0) or getattr(ds, "BitsAllocated", 16))
        stored = ((-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if int(getattr(ds, "PixelRepresentation", 0) or 0)
                  else (0, 2**bits - 1))
        values = [v * slope + intercept for v in stored]
        low, high = min(low, *values), max(high, *values)
    for dtype in (np.int16, np.int32):
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.float32)


def _decode_into(out: np.ndarray, file: Path, uid: str, folder: Path) -> None:
    """Slice ``file`` rescaled into ``out`` (Rows x Columns); only this slice is held meanwhile."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(file))
        pixels = ds.pixel_array
    except Exception as error:  # noqa: BLE001 - pydicom raises many types for bad pixel data
        raise InputError(folder, f"series {uid}: cannot decode pixel data of {file.name} "
                                 f"({first_line(error)})") from None
    if pixels.shape != out.shape:
        raise InputError(folder, f"series {uid}: {file.name} holds pixels of shape {pixels.shape}, not one "
                                 f"grey {out.shape} slice (multi-frame and colour DICOM are not supported)")
    slope, intercept = _rescale(ds)
    out[...] = pixels
    del ds, pixels  # only the volume and this slice's pixels are ever held
    # In place, in the volume's dtype: integers wrap modulo 2**bits, so the result is exact
    # whenever it fits the dtype, which target_dtype made sure of.
    if slope != 1:
        out *= np.array(slope).astype(out.dtype) if out.dtype.kind == "f" else np.array(int(slope)).astype(out.dtype)
    if intercept != 0:
        out += np.array(intercept).astype(out.dtype) if out.dtype.kind == "f" else np.array(int(intercept)).astype(out.dtype)


def read_dicom_series(folder: Path):
    """One series from ``folder``: grouped by SeriesInstanceUID, the largest taken (with a
    :class:`InputWarning` naming the others); gaps, uneven steps and duplicate positions are refused."""
    from .read import Volume, check_voxel_count

    series = _headers(folder)
    if not series:
        raise InputError(folder, "no DICOM images")
    ranked = sorted(series.items(), key=lambda kv: (-len(kv[1]), int(getattr(kv[1][0][1], "SeriesNumber", 0) or 0),
                                                    kv[0]))
    uid, entries = ranked[0]
    if len(ranked) > 1:
        others = ", ".join(f"{u} ({len(s)} images)" for u, s in ranked[1:])
        warnings.warn(InputWarning(folder, f"{len(ranked)} DICOM series in one folder; reading the largest, "
                                           f"{uid} ({len(entries)} images), and ignoring {others}"), stacklevel=3)
    slices = [ds for _, ds in entries]
    try:
        row, col = (np.array(slices[0].ImageOrientationPatient[:3], float),
                    np.array(slices[0].ImageOrientationPatient[3:], float))
        normal = np.cross(row, col)
        positions = {id(ds): float(np.dot(normal, np.array(ds.ImagePositionPatient, float))) for ds in slices}
        dy, dx = (float(v) for v in slices[0].PixelSpacing)
        shapes = {(int(ds.Rows), int(ds.Columns)) for ds in slices}
    except (AttributeError, TypeError, ValueError) as error:
        raise InputError(folder, f"series {uid}: missing or bad geometry tags ({first_line(error)})") from None
    if not all(np.isfinite([*row, *col, dy, dx, *positions.values()])) or dy <= 0 or dx <= 0:
        raise InputError(folder, f"series {uid}: orientation, position or pixel spacing is not a finite "
                                 "positive number")
    entries.sort(key=lambda entry: positions[id(entry[1])])
    slices = [ds for _, ds in entries]
    if len(shapes) > 1:
        raise InputError(folder, f"series {uid}: slices of different sizes {sorted(shapes)}")
    along = np.array([positions[id(ds)] for ds in slices])
    check_spacing(folder, uid, along)
    rows, cols = shapes.pop()
    dtype = target_dtype(slices)
    check_voxel_count(folder, (len(slices), rows, cols), dtype.itemsize, copies=0)  # the budget: below
    # the volume, one slice being decoded (its bytes and pixels, 16 bits or less) and a narrowing copy
    check_memory(folder, len(slices) * rows * cols * (dtype.itemsize + (2 if dtype == np.int32 else 0))
                 + rows * cols * 4, f"decoding {len(slices)} x {rows} x {cols} DICOM pixels")
    data = np.empty((len(slices), rows, cols), dtype)
    for k, (file, _) in enumerate(entries):
        _decode_into(data[k], file, uid, folder)
    if dtype == np.int32 and data.size and data.min() >= -32768 and data.max() < 32768:
        data = data.astype(np.int16)  # what a CT stored as unsigned 16 bits fits in
    positions_xyz = np.array([ds.ImagePositionPatient for ds in slices], float)
    dz = float(np.min(np.diff(along))) if len(slices) > 1 else float(getattr(slices[0], "SliceThickness", 1.0))
    # DICOM is LPS; the affine maps (col, row, slice) indices to LPS millimetres.
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = row * dx, col * dy, normal * dz
    affine[:3, 3] = positions_xyz[0]
    axcodes = source_axcodes(LPS_TO_RAS @ affine)
    return Volume(np.ascontiguousarray(to_display(data, axcodes)), display_spacing((abs(dz), dy, dx), axcodes),
                  affine, str(folder), "dicom",
                  {"affine_space": "LPS", "series_instance_uid": uid,
                   "source_axcodes": list(axcodes) if axcodes else None})


def check_spacing(folder: Path, uid: str, along: np.ndarray) -> None:
    """Refuse duplicate slice positions, gaps (a step that is a multiple of the smallest) and
    uneven steps (any other step that differs from the smallest by over 1%)."""
    if len(along) < 2:
        return
    steps = np.diff(along)
    median = float(np.median(steps))
    duplicates = [float(along[i]) for i in np.flatnonzero(steps < 1e-3 * max(abs(median), 1e-6))]
    if duplicates or median <= 0:
        raise InputError(folder, f"series {uid}: two slices at position(s) "
                                 f"{', '.join(f'{p:.2f}' for p in duplicates)} mm; is it two series with one UID?")
    step = float(steps.min())
    missing, uneven = [], []
    for i, size in enumerate(steps):
        count = int(round(size / step))
        if abs(size - count * step) > STEP_TOLERANCE * step:
            uneven.append(i)
        missing += [float(along[i] + step * (k + 1)) for k in range(count - 1)]
    if uneven:
        i = uneven[0]
        raise InputError(folder, f"series {uid} has uneven slice spacing: {steps[i]:.2f} mm between the slices "
                                 f"at {along[i]:.2f} and {along[i + 1]:.2f} mm, {step:.2f} mm elsewhere; refusing "
                                 "a volume whose slices are not equally spaced")
    if missing:
        shown = ", ".join(f"{p:.2f}" for p in missing[:10]) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        raise InputError(folder, f"series {uid} has a gap: no slice at position(s) {shown} mm along the slice "
                                 f"normal (step {step:.2f} mm, {len(along)} slices); refusing a volume with missing slices")
