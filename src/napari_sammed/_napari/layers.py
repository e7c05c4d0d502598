"""Translation between napari layer data and core prompts/masks.

napari stores points and shapes as (row, col) = (y, x) data coordinates, with the slice index
in front for volumes, and pixel *centres* at integers; the engine wants (x, y) in a frame where
pixel i spans [i, i + 1]. This is the only place that swaps axes and shifts by half a pixel.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox
from napari.layers import Labels

from ..core.engine.slice_engine import Prompt
from ..core.io.windowing import Window

POINTS, BOXES, PREVIEW = "SAM points", "SAM boxes", "SAM preview"


def slice_index_of(coords: np.ndarray, axis: int | None) -> np.ndarray:
    return np.zeros(len(coords), int) if axis is None else np.rint(coords[:, axis]).astype(int)


def in_plane(coords: np.ndarray, axis: int | None) -> np.ndarray:
    """(N, D) data coordinates -> (N, 2) (row, col) in the slice plane."""
    if axis is None:
        return coords[:, -2:]
    keep = [i for i in range(coords.shape[1]) if i != axis]
    return coords[:, keep]


def prompt_for_slice(
    points: np.ndarray,
    positive: np.ndarray,
    boxes: list[np.ndarray],
    axis: int | None,
    index: int,
) -> Prompt | None:
    """Collect the clicks and the last box lying on slice ``index`` into one engine prompt."""
    xy = labels = box = None
    if len(points):
        on = slice_index_of(points, axis) == index
        if on.any():
            rc = in_plane(points[on], axis)
            xy = rc[:, ::-1] + 0.5  # pixel centres, (x, y)
            labels = np.asarray(positive)[on].astype(int)
    for vertices in boxes[::-1]:
        vertices = np.asarray(vertices)
        if axis is not None and not np.all(np.rint(vertices[:, axis]) == index):
            continue
        rc = in_plane(vertices, axis)
        (r0, c0), (r1, c1) = rc.min(0), rc.max(0)
        if r1 > r0 and c1 > c0:
            box = np.array([c0, r0, c1, r1], float) + 0.5  # napari pixel centres are integers
            break
    if xy is None and box is None:
        return None
    return Prompt(points=xy, point_labels=labels, box=box)


def slice_key(axis: int | None, index: int, ndim: int) -> tuple:
    """Index tuple selecting one slice of an ndim array."""
    if axis is None:
        return (Ellipsis,)
    key: list = [slice(None)] * ndim
    key[axis] = index
    return tuple(key)


def write_mask(labels_layer, mask: np.ndarray, axis: int | None, index: int, value: int,
               overwrite: bool = False, replace: bool = False) -> int:
    """Paint ``mask`` (the slice plane) into ``labels_layer`` with napari's undo history.

    Voxels of other objects are kept unless ``overwrite``; with ``replace`` the object's voxels
    outside ``mask`` on this slice are cleared first. Returns the number of voxels painted.
    """
    current = np.asarray(labels_layer.data[slice_key(axis, index, labels_layer.data.ndim)])
    if replace:
        rows, cols = np.nonzero((current == value) & ~mask)
        if rows.size:
            labels_layer.data_setitem(plane_indices(axis, index, rows, cols), 0)
            current = np.asarray(labels_layer.data[slice_key(axis, index, labels_layer.data.ndim)])
    writable = mask & ((current == 0) | (current == value) | bool(overwrite)) & (current != value)
    rows, cols = np.nonzero(writable)
    if rows.size == 0:
        return 0
    labels_layer.data_setitem(plane_indices(axis, index, rows, cols), value)
    return int(rows.size)


def plane_indices(axis: int | None, index: int, rows: np.ndarray, cols: np.ndarray) -> tuple:
    """(rows, cols) of slice ``index`` along ``axis`` as fancy indices into the layer's array."""
    if axis is None:
        return rows, cols
    parts = [rows, cols]
    parts.insert(axis, np.full(rows.shape, index))
    return tuple(parts)


def layer_choice(viewer, label: str, kind: type, nullable: bool = False) -> ComboBox:
    """A combo box of the viewer's layers of ``kind`` (never the preview), kept up to date."""

    def choices(_widget=None):
        return [layer for layer in viewer.layers if isinstance(layer, kind) and layer.name != PREVIEW]

    combo = ComboBox(label=label, choices=choices, nullable=nullable)
    viewer.layers.events.inserted.connect(lambda _event: combo.reset_choices())
    viewer.layers.events.removed.connect(lambda _event: combo.reset_choices())
    return combo


def contrast_window(layer) -> Window | None:
    """The intensity window the annotator sees: the layer's contrast limits (None for 0-255 uint8)."""
    low, high = layer.contrast_limits
    if layer.data.dtype == np.uint8 and (low, high) == (0, 255):
        return None
    return Window(float(low), float(high))


def record_provenance(layer, engine: dict, window: Window | None, trace=None) -> None:
    """What made this labels layer, for exports: the engine, the window and any QC trace."""
    from dataclasses import asdict

    made_by = layer.metadata.setdefault("napari_sammed", {})
    made_by["engine"] = engine
    made_by["window"] = None if window is None else window.as_dict()
    if trace is not None:
        made_by["trace"] = [asdict(row) for row in trace]


def metadata_class_names(layer: Labels) -> dict[int, str]:
    """The layer's ``metadata["class_names"]`` with integer ids (JSON round trips make them strings)."""
    return {int(k): str(v) for k, v in (layer.metadata.get("class_names") or {}).items()}


def layer_class_names(layer: Labels) -> dict[int, str]:
    """Names from ``metadata["class_names"]`` or a features table with index + name/class."""
    names = metadata_class_names(layer)
    features = getattr(layer, "features", None)
    if features is not None and "index" in features:
        for column in ("name", "class", "class_name"):
            if column in features:
                names.update({int(i): str(n) for i, n in zip(features["index"], features[column], strict=True)})
    return names
