"""Write (Z, Y, X) volumes with their source geometry: NIfTI, TIFF and zarr, always atomically.

``meta`` is what :meth:`~napari_sammed.core.io.Volume.layer_metadata` gives (and what a napari
layer keeps in ``metadata``): ``spacing``, the source ``affine`` when there was one,
``source`` / ``source_format``, ``affine_space`` ("LPS" for DICOM) and ``source_axcodes`` (the
source voxel order; NIfTI is written back in it, TIFF and zarr keep the display order).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import InputError, NeedsOption
from .atomic import atomic_write, temp_dir
from .orientation import LPS_TO_RAS, display_affine, to_source
from .read import is_nifti, is_zarr

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".tif", ".tiff", ".zarr")


def check_output(path, overwrite: bool = False, suffixes: tuple[str, ...] | None = None,
                 folder: bool = False) -> Path:
    """Refuse an output path before any work starts (minutes of model time are lost otherwise):
    an unsupported suffix, a file where a folder goes (or the reverse), an existing file without
    ``overwrite``, or a place that cannot be written. ``.zarr`` outputs are folders."""
    path = Path(path)
    if suffixes and not path.name.lower().endswith(suffixes):
        raise InputError(None, f"cannot write {path.name}: use {', '.join(suffixes)}")
    if folder and path.exists() and not path.is_dir():
        raise InputError(None, f"{path} is a file; give a folder")
    if not folder and path.is_dir() and not is_zarr(path):
        raise InputError(None, f"{path} is a folder; give a file name")
    if not folder and path.exists() and not overwrite:
        raise NeedsOption(f"{path} exists; pass {{overwrite}} to replace it")
    parent = path if folder and path.exists() else path.parent
    while not parent.exists() and parent != parent.parent:  # folders are created on writing
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(None, f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: {parent} is not writable")
    return path


def label_dtype(array: np.ndarray) -> np.dtype:
    """The smallest unsigned type holding every label; labels must be non-negative integers."""
    array = np.asarray(array)
    if array.dtype.kind not in "iub":
        raise InputError(None, f"labels must be integers, got {array.dtype}")
    low, high = int(array.min(initial=0)), int(array.max(initial=0))
    if low < 0:
        raise InputError(None, f"labels must be non-negative, found {low}")
    for dtype in (np.uint8, np.uint16, np.uint32):
        if high <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise InputError(None, f"label {high} does not fit 32 bits")


def nifti_affine(meta: dict, ndim: int = 3) -> np.ndarray:
    """The RAS voxel-to-world affine of ``data.T``: the source's, else one from the spacing;
    refused when not finite (a NaN would be written into every exported file)."""
    affine = meta.get("affine")
    if affine is None:
        spacing = list(meta.get("spacing") or [1.0] * ndim)[::-1]
        affine = np.diag([*(float(s) for s in spacing), *[1.0] * (4 - len(spacing))])
    else:
        affine = np.asarray(affine, float)
        affine = LPS_TO_RAS @ affine if meta.get("affine_space") == "LPS" else affine
    if not np.all(np.isfinite(affine)):
        raise InputError(None, f"the image's geometry (spacing {meta.get('spacing')}, affine) holds NaN or infinite "
                               "values; it cannot be written")
    return affine


def _axcodes(meta: dict) -> tuple[str, ...] | None:
    codes = meta.get("source_axcodes")
    return tuple(codes) if codes else None


def _source_header(meta: dict):
    """The source NIfTI header, so pixdim, units, qform/sform codes survive bit for bit."""
    import nibabel as nib

    source = meta.get("source")
    if meta.get("source_format") != "nifti" or not source or not os.path.exists(source):
        return None
    return nib.load(source).header.copy()


def to_nifti(data: np.ndarray, meta: dict, dtype: np.dtype | None = None):
    """A nibabel image of ``data`` (Z, Y, X) with the source geometry."""
    import nibabel as nib

    array = to_source(np.asarray(data), _axcodes(meta))
    dtype = np.dtype(dtype or array.dtype)
    header = _source_header(meta)
    image = nib.Nifti1Image(np.ascontiguousarray(array.astype(dtype, copy=False).T), nifti_affine(meta, array.ndim),
                            header=header)
    if header is not None:
        # The source's own codes and its qform (not one re-derived from the affine).
        image.set_qform(header.get_qform(), code=int(header["qform_code"]))
        image.set_sform(header.get_sform(), code=int(header["sform_code"]))
    image.set_data_dtype(dtype)
    image.header.set_slope_inter(1.0, 0.0)
    return image


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise NeedsOption(f"{path} exists; pass {{overwrite}} to replace it")


def write_nifti(path, data, meta: dict, dtype=None, overwrite: bool = False) -> Path:
    """Write ``data`` as NIfTI with the geometry in ``meta``, atomically."""
    import nibabel as nib

    path = Path(path)
    _refuse_existing(path, overwrite)
    image = to_nifti(data, meta, dtype)
    return atomic_write(path, lambda tmp: nib.save(image, tmp))


def write_tiff(path, data, meta: dict, overwrite: bool = False, labels: bool = False) -> Path:
    """ImageJ hyperstack TIFF; in-plane pixel size as resolution, slice spacing in the metadata.

    ImageJ holds 8/16-bit integers or float32. Integers that fit 0-65535 are written as uint16;
    other images as float32 where that is exact (|values| <= 2**24). Labels beyond 16 bits, and
    integers float32 cannot hold exactly, keep an integer dtype in a plain (non-ImageJ) TIFF whose
    JSON description carries the spacing (``read_tiff`` reads both).
    """
    import tifffile

    path = Path(path)
    _refuse_existing(path, overwrite)
    array = np.asarray(data)
    spacing = list(meta.get("spacing") or [1.0] * array.ndim)
    axes = "ZYX" if array.ndim == 3 else "YX"
    kwargs = {"imagej": True, "metadata": {"axes": axes, "unit": "mm"},
              "resolution": (1.0 / float(spacing[-1]), 1.0 / float(spacing[-2]))}
    if array.ndim == 3:
        kwargs["metadata"]["spacing"] = float(spacing[0])
    if array.dtype.kind in "iub":
        low, high = int(array.min(initial=0)), int(array.max(initial=0))
        if low >= 0 and high < 65536:
            array = array.astype(np.uint16)
        elif not labels and max(-low, high) <= 2**24:
            array = array.astype(np.float32)  # exact
        else:
            array = array.astype(label_dtype(array) if labels else array.dtype)
            kwargs["imagej"], kwargs["photometric"] = False, "minisblack"
            kwargs["metadata"] = {"axes": axes, "unit": "mm", "spacing": [float(v) for v in spacing]}
    elif array.dtype != np.float32:
        array = array.astype(np.float32)  # ImageJ stores 8/16-bit integers or float32
    return atomic_write(path, lambda tmp: tifffile.imwrite(tmp, array, **kwargs))


def zarr_group(path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write a zarr v3 group of ``arrays`` (one chunk per slice), spacing/affine as attributes."""
    import zarr

    first = next(iter(arrays.values()))
    attrs = {"spacing": [float(s) for s in (meta.get("spacing") or [1.0] * first.ndim)]}
    if meta.get("affine") is not None:  # of the stored array's reversed axes, as in NIfTI
        source_shape = to_source(first, _axcodes(meta)).shape  # flips are measured in the source's voxels
        attrs["affine"] = display_affine(meta["affine"], _axcodes(meta), source_shape).tolist()
        attrs["affine_space"] = meta.get("affine_space", "RAS")
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    for name, data in arrays.items():
        chunks = (1, *data.shape[1:]) if data.ndim == 3 else data.shape
        stored = group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks)
        stored[...] = data
        stored.attrs.update(attrs)
    group.attrs.update(attrs)


def write_zarr(path, data, meta: dict, overwrite: bool = False, name: str = "labels") -> Path:
    """A zarr v3 group with one array ``name``, written beside the target and renamed into place."""
    path = Path(path)
    _refuse_existing(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(path.parent, ".zarr")
    try:
        zarr_group(tmp, {name: np.asarray(data)}, meta)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path


def write_volume(path, data, meta: dict, overwrite: bool = False, labels: bool = True) -> Path:
    """Write by suffix: ``.nii``/``.nii.gz``, ``.tif``/``.tiff`` or ``.zarr``."""
    path = Path(path)
    if is_nifti(path):
        return write_nifti(path, data, meta, label_dtype(data) if labels else None, overwrite)
    if path.name.lower().endswith((".tif", ".tiff")):
        return write_tiff(path, data, meta, overwrite, labels=labels)
    if is_zarr(path):
        return write_zarr(path, data, meta, overwrite, "labels" if labels else "image")
    raise InputError(None, f"cannot write {path.name}: use {', '.join(VOLUME_SUFFIXES)}")
