"""The dock's 3D update: a slice the user accepts updates the whole object (VolumeAnnotator).

Confirmed slices live in the labels layer's metadata (``napari_sammed.confirmed``: the slice
axis and, per object id, its slices), so they travel with the layer; slices painted by hand
become confirmed too. Before each update the annotator is brought in line with the layer (the
user may have painted or pressed Ctrl+Z since), and its result is written as the difference to
the layer in one undo step, never over another object's voxels unless asked.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from napari.qt.threading import thread_worker

from ..core.volume.annotator import VolumeAnnotator


def confirmed_slices(layer, axis_name: str, object_id: int) -> list[int]:
    """The slices of ``object_id`` confirmed along ``axis_name`` in ``layer``'s metadata."""
    record = layer.metadata.get("napari_sammed", {}).get("confirmed", {})
    if record.get("axis") != axis_name:
        return []
    return sorted(int(k) for k in record.get("objects", {}).get(str(object_id), []))


def add_confirmed(layer, axis_name: str, object_id: int, slices) -> None:
    """Record ``slices`` of ``object_id`` as confirmed (another axis's record is replaced)."""
    made_by = layer.metadata.setdefault("napari_sammed", {})
    record = made_by.get("confirmed")
    if not record or record.get("axis") != axis_name:
        record = made_by["confirmed"] = {"axis": axis_name, "objects": {}}
    known = set(record["objects"].get(str(object_id), []))
    record["objects"][str(object_id)] = sorted(known | {int(k) for k in slices})


def painted_slices(atoms, axis: int) -> dict[int, set[int]]:
    """Object id -> slices along ``axis`` touched by one napari undo item (a brush stroke, a
    fill, an erase): both the label painted and the labels painted over."""
    touched: dict[int, set[int]] = {}
    for atom in atoms:
        if hasattr(atom, "slice_key"):  # napari's mask-based paint atom
            span = atom.slice_key[axis]
            slices = range(span.start or 0, span.stop)
            ids = {int(atom.new_value), *np.unique(atom.old_values).tolist()}
        else:  # (indices, old values, new values) from data_setitem
            indices, old, new = atom
            slices = np.unique(indices[axis]).tolist()
            ids = {*np.unique(old).tolist(), *np.atleast_1d(new).tolist()}
        for object_id in ids - {0}:
            touched.setdefault(int(object_id), set()).update(int(k) for k in slices)
    return touched


class Interactive3D:
    """One per dock: the annotator for the current image/labels/axis, and the writes it makes."""

    def __init__(self, session) -> None:
        self.session = session
        self._annotator: VolumeAnnotator | None = None
        self._key: tuple | None = None
        self._writing = False
        self._watched: set[int] = set()

    @contextmanager
    def model_writes(self):
        """Writes made inside are the plugin's, not the user's hand: they confirm nothing."""
        self._writing, before = True, self._writing
        try:
            yield
        finally:
            self._writing = before

    def watch(self, layer) -> None:
        """Confirm the slices the user paints by hand in ``layer``."""
        if id(layer) not in self._watched:
            self._watched.add(id(layer))
            layer.events.paint.connect(lambda event, target=layer: self._on_paint(target, event.value))

    def _on_paint(self, layer, atoms) -> None:
        axis = self.session.slice_axis()
        if self._writing or axis is None or layer is not self.session.labels:
            return
        for object_id, slices in painted_slices(atoms, axis).items():
            add_confirmed(layer, self.session.axis_name, object_id, slices)
        self.session.confirmed_changed()

    def applies(self, layer, object_id: int, index: int) -> bool:
        """Whether accepting slice ``index`` updates the object in 3D: it already has voxels on
        another slice, or the user gave its z-range."""
        axis = self.session.slice_axis()
        if axis is None:
            return False
        if self.session.z_range(object_id) is not None:
            return True
        present = np.flatnonzero(np.moveaxis(np.asarray(layer.data) == object_id, axis, 0).any(axis=(1, 2)))
        return bool(np.any(present != index))

    def annotator(self, layer) -> VolumeAnnotator:
        store = self.session.volume_embeddings()
        key = (id(store), id(layer))
        if key != self._key or self._annotator is None:
            self._annotator, self._key = VolumeAnnotator(store), key
        return self._annotator

    def update(self, layer, object_id: int, index: int, mask: np.ndarray):
        """Confirm ``mask`` on slice ``index`` and update the object in 3D, in a worker; the
        result is written when it finishes (one undo step). Returns the started worker."""
        session, axis_name = self.session, self.session.axis_name
        annotator = self.annotator(layer)
        current = np.asarray(layer.data) == object_id
        confirmed = confirmed_slices(layer, axis_name, object_id)
        z_range = session.z_range(object_id)

        @thread_worker(progress={"total": 0, "desc": "Updating the 3D mask"})
        def run():
            if not np.array_equal(annotator.mask(object_id), current):  # painted or undone since
                annotator.load(object_id, current, confirmed)
            return annotator.paint(object_id, index, mask, z_range=z_range, by_hand=False)

        worker = run()
        worker.returned.connect(lambda new: self._commit(layer, object_id, index, new))
        return session.start_worker(worker, "3D update")

    def _commit(self, layer, object_id: int, index: int, new: np.ndarray) -> None:
        data = np.asarray(layer.data)
        mine = data == object_id
        add = new & ~mine & ((data == 0) | bool(self.session.overwrite))
        remove = mine & ~new
        with self.model_writes(), layer.block_history():
            if remove.any():
                layer.data_setitem(np.nonzero(remove), 0)
            if add.any():
                layer.data_setitem(np.nonzero(add), object_id)
        add_confirmed(layer, self.session.axis_name, object_id, [index])
        self.session.record(layer)
        self.session.confirmed_changed()
