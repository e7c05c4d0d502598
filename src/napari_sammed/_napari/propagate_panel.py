"""Propagate panel of the segment dock: seeds from the labels layer, a worker, one undo step, QC plot.

Seeds are an object's confirmed slices (accepted or painted by hand, on record in the labels
layer's metadata): the slices the run reaches are re-predicted and replace what was there. An
object with no confirmed slices on record seeds from every slice where it has voxels (kept, never
re-predicted). If the current object has no voxels yet, its preview is the seed, on the preview's
own slice (wherever the user looks), and is written there with the rest.
Negative clicks in "SAM points" on slices that are not seeds are stop markers. Results stream
into the preview layer while the worker runs and are written into the labels layer at the end -
or at Cancel - as one undo step.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, PushButton
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_info

from ..core.settings import PropagationSettings
from ..core.volume.propagation import Propagation, seeds_from_labels
from .interactive import add_confirmed, confirmed_slices
from .layers import POINTS, PREVIEW, in_plane, slice_index_of, slice_key, write_mask
from .qc_plot import QCPlot

CURRENT, ALL = "current object", "all objects"


class PropagatePanel(Container):
    """The segment dock's Propagate tab; acts through the viewer's :class:`Session`."""

    def __init__(self, session) -> None:
        super().__init__(labels=True)
        self.session = session
        self.running: Propagation | None = None
        self.replacing: set[int] = set()  # objects re-propagated from their confirmed slices
        self.from_preview = None  # the preview the run started from (written with the result)
        self.last_result: Propagation | None = None
        self.scope = ComboBox(label="propagate", choices=[CURRENT, ALL], value=CURRENT)
        self.direction = ComboBox(label="direction", choices=["both", "forward", "backward"], value="both")
        defaults = PropagationSettings()
        self.min_iou = FloatSpinBox(label="min predicted IoU", min=0.0, max=1.0, step=0.05, value=defaults.min_iou)
        self.min_neighbour_iou = FloatSpinBox(label="min IoU with previous slice", min=0.0, max=1.0, step=0.05,
                                              value=defaults.min_neighbour_iou)
        self.button = PushButton(text="Propagate through volume")
        self.status = Label(label="propagation", value="–")
        self.plot = QCPlot(on_pick=self.jump_to)
        self.extend([self.scope, self.direction, self.min_iou, self.min_neighbour_iou, self.button, self.status])
        self.native.layout().addWidget(self.plot.canvas)
        self.plot.canvas.setVisible(False)  # shown once there is a trace
        self.native.layout().addStretch()
        self.button.changed.connect(lambda: self.propagate())

    def settings(self) -> PropagationSettings:
        return PropagationSettings(min_iou=float(self.min_iou.value), min_neighbour_iou=float(self.min_neighbour_iou.value),
                                   direction=self.direction.value)

    # ---- inputs --------------------------------------------------------------------------
    def seeds(self, layer, axis: int) -> dict:
        session = self.session
        current = int(session.object_id)
        seeds = seeds_from_labels(np.asarray(layer.data), axis, None if self.scope.value == ALL else [current])
        self.replacing = set()
        for object_id, per_slice in seeds.items():  # an object with confirmed slices starts from those only
            confirmed = set(confirmed_slices(layer, session.axis_name, object_id))
            mine = {k: m for k, m in per_slice.items() if k in confirmed}
            if mine:
                seeds[object_id] = mine
                self.replacing.add(object_id)
        preview = session.preview_on_image()
        self.from_preview = None
        if self.scope.value == CURRENT and current not in seeds and preview is not None:  # its object is current
            seeds[current] = {preview.index: preview.prediction.mask}
            self.from_preview = preview
        return seeds

    def stop_markers(self, axis: int, seed_slices: set[int]) -> dict:
        """Negative clicks on non-seed slices, as (slice, x, y) for every object."""
        layers = self.session.viewer.layers
        points = layers[POINTS] if POINTS in layers else None
        if points is None or not len(points.data):
            return {}
        coords = np.asarray(points.data)
        negative = ~points.features["positive"].to_numpy().astype(bool)
        slices = slice_index_of(coords, axis)
        rows_cols = in_plane(coords, axis)
        markers = [(int(k), float(rc[1]) + 0.5, float(rc[0]) + 0.5)
                   for k, rc, neg in zip(slices, rows_cols, negative, strict=True) if neg and int(k) not in seed_slices]
        return {0: markers} if markers else {}

    # ---- running -------------------------------------------------------------------------
    def propagate(self):
        """Start propagation in a worker; returns it (or None with a message when it cannot run)."""
        session = self.session
        if session.engine is None or session.image is None or session.worker is not None:
            return None
        axis = session.slice_axis()
        if axis is None or session.image.rgb:
            show_info("napari-sammed: propagation needs a 3D volume")
            return None
        if session.labels is None and session.preview_on_image() is None:
            show_info("napari-sammed: segment an object first (Accept it, or keep its preview)")
            return None
        layer = session.target_layer()
        seeds = self.seeds(layer, axis)
        if not seeds:
            show_info(f"napari-sammed: object {session.object_id} has no voxels and no preview to start from")
            return None
        seed_slices = {k for per_slice in seeds.values() for k in per_slice}
        stops = self.stop_markers(axis, seed_slices)
        self.running = propagation = Propagation(session.volume_embeddings(), seeds, self.settings(), stops)
        steps = propagation.steps()

        @thread_worker(progress={"total": 0, "desc": "Propagating"})
        def run():
            yield from steps

        worker = run()
        worker.yielded.connect(self._on_step)
        session.show_preview(None)
        seed = self.from_preview
        self.status.value = "running…" if seed is None else f"running from the preview on slice {seed.index}…"
        return session.start_worker(worker, "propagation", then=lambda: self._commit(layer, axis, seeds))

    def _on_step(self, step) -> None:
        if self.running is None:  # already committed
            return
        self.status.value = f"{step.done}/{step.total} slices"
        preview = self.session.viewer.layers[PREVIEW]
        plane = preview.data[slice_key(self.running.embeddings.axis, step.index, preview.data.ndim)]
        for mask in step.masks.values():
            plane[mask] = 1
        # Last: refreshing the preview and the progress bar may process Qt events, and with
        # them the worker's "finished" (which commits), so all bookkeeping is done by now.
        pbar = getattr(self.session.worker, "pbar", None)
        if pbar is not None:
            pbar.total = step.total
            pbar.update(step.done - pbar.n)
        preview.refresh()

    def _commit(self, layer, axis: int, seeds: dict) -> None:
        """Write everything propagated so far into ``layer`` as one undo step; show the QC."""
        result = self.running
        written = 0
        overwrite = bool(self.session.overwrite)
        with self.session.interactive.model_writes(), layer.block_history():
            seed = self.from_preview
            if seed is not None:  # the preview it started from: on its own slice, with the rest
                written += write_mask(layer, seed.prediction.mask, axis, seed.index, seed.object_id,
                                      overwrite=overwrite)
            for object_id in sorted(result.masks):
                replace = object_id in self.replacing  # a re-propagated slice replaces the old one
                for index, mask in sorted(result.masks[object_id].items()):
                    written += write_mask(layer, mask, axis, index, object_id, overwrite=overwrite, replace=replace)
        axis_name = self.session.axis_name
        for object_id, per_slice in seeds.items():  # the user's slices, unless already on record
            if not confirmed_slices(layer, axis_name, object_id):
                add_confirmed(layer, axis_name, object_id, per_slice)
        self.session.show_preview(None)
        self.last_result, self.running = result, None
        self.session.record(layer, result.trace)
        n_slices = sum(len(m) for m in result.masks.values())
        flagged = sorted({r.slice for r in result.trace if r.flag})
        look = f"; look at slice(s) {', '.join(map(str, flagged))} (leak?)" if flagged else ""
        self.status.value = f"{n_slices} slices, {written} voxels written (Ctrl+Z undoes all){look}"
        self.plot.canvas.setVisible(True)
        self.plot.show(result.trace, seeds)
        self.session.confirmed_changed()

    def jump_to(self, index: int) -> None:
        session = self.session
        axis = session.slice_axis()
        if axis is None:
            return
        layer = session.image
        index = int(np.clip(index, 0, layer.data.shape[axis] - 1))
        world = layer.data_to_world([index if i == axis else 0 for i in range(layer.ndim)])
        session.viewer.dims.set_point(session.viewer.dims.ndim - layer.ndim + axis, world[axis])

