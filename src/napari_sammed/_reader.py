"""npe2 reader: NIfTI, DICOM series folders, TIFF and zarr with voxel spacing as layer scale."""

from __future__ import annotations

from pathlib import Path

from .core.io.read import NIFTI_SUFFIXES, TIFF_SUFFIXES, Volume, is_zarr, read_volume


def get_reader(path):
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    name = p.name.lower()
    if name.endswith(NIFTI_SUFFIXES + TIFF_SUFFIXES + (".zarr", ".dcm")) or p.is_dir():
        return read_layers
    return None


def volume_layer_data(volume: Volume, name: str, kind: str = "image") -> tuple:
    """(data, kwargs, layer_type) keeping spacing as scale and geometry in metadata."""
    kwargs = {"name": name, "scale": volume.spacing, "metadata": volume.layer_metadata()}
    return volume.data, kwargs, kind


def read_layers(path) -> list[tuple]:
    if isinstance(path, list):
        path = path[0]
    arrays = _zarr_group_arrays(path)
    if len(arrays) > 1:  # e.g. our zarr stack export: one layer per array, labels as labels
        return [volume_layer_data(read_volume(Path(path) / name), name, "labels" if "label" in name else "image")
                for name in arrays]
    volume = read_volume(path)
    name = Path(path).name.split(".")[0]
    kind = "labels" if volume.data.dtype.kind in "iu" and _looks_like_labels(volume) else "image"
    return [volume_layer_data(volume, name, kind)]


def _zarr_group_arrays(path) -> list[str]:
    if not is_zarr(path):
        return []
    import zarr

    node = zarr.open(str(path), mode="r")
    return sorted(name for name, _ in node.arrays()) if isinstance(node, zarr.Group) else []


def _looks_like_labels(volume: Volume) -> bool:
    # Segmentations are small non-negative integers with few distinct values.
    data = volume.data
    if data.dtype.itemsize > 2 or data.min() < 0:
        return False
    sample = data.reshape(-1)[:: max(1, data.size // 200_000)]
    return len(set(sample.tolist())) <= 256 and data.max() <= 1000 and "seg" in str(volume.source).lower()
