"""The state one viewer's docks share: engine, embeddings, current image/labels/axis, the preview, one job.

The segment dock owns the controls and keeps this object's fields current; its propagate and
SAMAug panels read and act through it, never through another widget's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error

from ..core.engine.slice_engine import Prediction, SliceEngine
from ..core.io.windowing import AUTO_PRESET, Window, describe_window, resolve_window
from ..core.volume.embeddings import VolumeEmbeddings
from .interactive import Interactive3D, add_confirmed, confirmed_slices
from .layers import (
    BOXES,
    POINTS,
    PREVIEW,
    contrast_window,
    prompt_for_slice,
    record_provenance,
    slice_key,
    write_mask,
)
from .preview import Preview, preview_note
from .settings import cache_dir

FOLLOW = "follow contrast limits"


class Session:
    """Per-viewer state (no globals): what is segmented, with which model, and the running job."""

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.engine: SliceEngine | None = None
        self.image: Image | None = None
        self.labels: Labels | None = None
        self.axis_name = "z"
        self.window_choice = AUTO_PRESET
        self.object_id = 1
        self.overwrite = False
        self.preview: Preview | None = None
        self.waiting: int | None = None  # a shown slice whose prompt waits for its embedding
        self.seconds_per_slice: float | None = None  # measured by the last embedding job
        self.worker = None
        self.on_busy: list[Callable[[bool], None]] = []
        self.on_new_labels: list[Callable[[Labels], None]] = []
        self.on_confirmed: list[Callable[[], None]] = []  # confirmed slices or a z-range changed
        self.z_ranges: dict[int, list[int | None]] = {}  # object id -> [first, last] slice
        self.interactive = Interactive3D(self)
        self._embeddings: VolumeEmbeddings | None = None
        self._embed_key: tuple | None = None
        self._preset_windows: dict[tuple, tuple[Image, Window | None]] = {}

    # ---- the preview ---------------------------------------------------------------------
    def preview_on_image(self) -> Preview | None:
        """The preview if it belongs to the current image and slice axis, on whichever slice."""
        p = self.preview
        return p if p is not None and p.belongs_to(self.image, self.slice_axis()) else None

    def preview_here(self) -> Preview | None:
        """The preview of the slice shown (what Accept writes), else None."""
        p = self.preview_on_image()
        return p if p is not None and p.index == self.current_index() else None

    def note(self, empty: str = "–") -> str:
        """The dock's status line: the preview of the slice shown, or why Accept writes nothing."""
        index = self.current_index() if self.image is not None else 0
        return preview_note(self.preview, self.image, self.slice_axis(), index, self.waiting == index, empty)

    def set_object(self, object_id: int) -> None:
        """The object the user works on; a preview not yet accepted becomes this object's."""
        self.object_id = int(object_id)
        if self.preview is not None and self.preview.object_id != self.object_id:
            self.preview = replace(self.preview, object_id=self.object_id)

    def prompt(self, index: int):
        """The prompt drawn on slice ``index`` in 'SAM points' and 'SAM boxes' (None if none)."""
        layers = self.viewer.layers
        if POINTS not in layers or BOXES not in layers:
            return None
        points, boxes = layers[POINTS], layers[BOXES]
        rects = [d for d, t in zip(boxes.data, boxes.shape_type, strict=True) if t == "rectangle"]
        positive = points.features["positive"].to_numpy() if len(points.data) else np.zeros(0, bool)
        return prompt_for_slice(np.asarray(points.data), positive, rects, self.slice_axis(), index)

    def decode(self, index: int) -> bool:
        """Make the preview of slice ``index`` from its prompt; False when the slice must be embedded
        first. A preview of another slice stays that slice's while its prompt is there."""
        p = self.preview
        if p is not None and (not p.belongs_to(self.image, self.slice_axis()) or self.prompt(p.index) is None):
            self.show_preview(None)  # its prompt (or its image) is gone, and so is it
        prompt = self.prompt(index)
        if prompt is None:
            return True
        store = self.volume_embeddings()
        if not store.is_embedded(index):
            if self.preview is not None and self.preview.index == index:  # an older prompt's (or window's)
                self.show_preview(None)
            return False
        prediction = self.engine.predict_batch(store.get(index), store.slice_shape, [prompt])[0]
        self.set_preview(prediction, index)
        return True

    # ---- slices --------------------------------------------------------------------------
    def slice_axis(self) -> int | None:
        """Axis of the image's data that slices run along (None for a 2D or RGB image)."""
        if self.image is None or self.image.ndim == 2:
            return None
        return "zyx".index(self.axis_name)

    def current_index(self) -> int:
        axis = self.slice_axis()
        if axis is None:
            return 0
        coords = self.image.world_to_data(self.viewer.dims.point)
        return int(np.clip(np.rint(coords[axis]), 0, self.image.data.shape[axis] - 1))

    def current_window(self) -> Window | None:
        """What the model sees: a preset (``auto`` by default: the CT window for a CT in HU, else
        percentiles), computed once per image, or on request the layer's contrast limits."""
        if self.window_choice == FOLLOW:
            return contrast_window(self.image)
        key = (id(self.image), self.window_choice)
        image, window = self._preset_windows.get(key, (None, None))
        if image is not self.image:  # computed once per layer (a percentile window reads the whole volume)
            window = resolve_window(np.asarray(self.image.data), self.window_choice)
            self._preset_windows[key] = (self.image, window)  # the layer kept: a reused id is no match
        return window

    def window_note(self) -> str:
        """The model's window, and whether (and at what cost) a contrast change re-embeds."""
        if self.image is None or self.engine is None:
            return ""
        try:
            window = self.current_window()
        except ValueError as error:  # e.g. an image without one finite voxel
            return f"no model window: {error}"
        if self.window_choice != FOLLOW:
            return f"model {describe_window(window)}; display contrast changes cost nothing"
        text = f"model {describe_window(window)} (follows the display contrast)"
        shown = self._embeddings
        if shown is not None and self._embed_key[0] == id(self.image) and shown.window != window:
            cost = (f", ~{shown.n_slices * self.seconds_per_slice:.0f} s for all {shown.n_slices}"
                    if self.seconds_per_slice else "")
            text += (f"; contrast changed: slices are embedded again as you visit them{cost}"
                     " (earlier windows stay cached)")
        return text

    def z_range(self, object_id: int) -> tuple[int, int] | None:
        """The (first, last) slice the user marked for ``object_id``, once both are marked."""
        first, last = self.z_ranges.get(int(object_id), [None, None])
        return None if first is None or last is None else (min(first, last), max(first, last))

    def object_3d_note(self, object_id: int) -> str:
        """"confirmed slices 9, 15 · z-range 3-20" for ``object_id``."""
        parts = []
        if self.labels is not None:
            slices = confirmed_slices(self.labels, self.axis_name, object_id)
            parts.append("confirmed slices " + (", ".join(map(str, slices)) or "none"))
        first, last = self.z_ranges.get(int(object_id), [None, None])
        if first is not None or last is not None:
            parts.append(f"z-range {'?' if first is None else first}–{'?' if last is None else last}")
        return " · ".join(parts) or "–"

    def confirmed_changed(self) -> None:
        """Tell the ``on_confirmed`` listeners that confirmed slices changed."""
        for listener in self.on_confirmed:
            listener()

    def volume_embeddings(self) -> VolumeEmbeddings:
        """Embeddings for the current (image, window, axis, model); rebuilt when any changes.

        Cheap: the volume is hashed for its disk cache only when a worker first needs it.
        """
        layer, window, axis = self.image, self.current_window(), self.slice_axis()
        key = (id(layer), window, axis, id(self.engine))
        if self._embed_key != key or self._embeddings is None:
            data = np.asarray(layer.data)
            if layer.rgb or axis is None:
                data = data[None]  # one slice
            self._embeddings = LayerEmbeddings(self.engine, data, window, 0 if axis is None else axis,
                                               cache_dir=cache_dir() if data.shape[0] > 1 else None,
                                               rgb=bool(layer.rgb))
            self._embed_key = key
        return self._embeddings

    def forget_embeddings(self) -> None:
        self._embeddings, self._embed_key = None, None

    # ---- layers --------------------------------------------------------------------------
    def target_layer(self) -> Labels:
        """The labels layer to write into; ``<image> labels`` is created on first use."""
        if self.labels is None:
            image = self.image
            shape = image.data.shape[:2] if image.rgb else image.data.shape
            self.labels = self.viewer.add_labels(
                np.zeros(shape, np.int32), name=f"{image.name} labels", scale=image.scale[: len(shape)],
                translate=image.translate[: len(shape)], metadata=dict(image.metadata))
            for listener in self.on_new_labels:
                listener(self.labels)
        return self.labels

    def show_preview(self, mask: np.ndarray | None, index: int = 0) -> None:
        """Draw ``mask`` on slice ``index`` of the preview layer (None clears it and forgets the preview)."""
        if mask is None:
            self.preview = None
        if PREVIEW not in self.viewer.layers:
            return
        preview = self.viewer.layers[PREVIEW]
        preview.data[...] = 0
        if mask is not None:
            preview.data[slice_key(self.slice_axis(), index, preview.data.ndim)] = mask.astype(np.uint8)
        preview.refresh()

    def write_preview(self, preview: Preview, auto_3d: bool):
        """Write ``preview`` on its own slice of the target layer, as one undo step; with ``auto_3d``,
        when the object has voxels on other slices or a z-range, update it in 3D in a worker instead.
        Returns (voxels written, or the worker) and a sentence for the status line."""
        layer = self.target_layer()
        index, object_id, mask = preview.index, preview.object_id, preview.prediction.mask
        place = "" if preview.axis is None else f" on slice {index}"
        if auto_3d and self.interactive.applies(layer, object_id, index):
            worker = self.interactive.update(layer, object_id, index, mask)
            return worker, f"object {object_id} accepted{place}; updating it in 3D"
        with self.interactive.model_writes():
            written = write_mask(layer, mask, preview.axis, index, object_id, overwrite=self.overwrite)
        if preview.axis is not None:
            add_confirmed(layer, self.axis_name, object_id, [index])
        self.record(layer)
        return written, f"object {object_id} written{place} (Ctrl+Z undoes it)"

    def set_preview(self, prediction: Prediction, index: int) -> None:
        """Show ``prediction`` as the current object's preview of slice ``index`` of the current image."""
        self.preview = Preview(self.image, self.slice_axis(), index, self.object_id, prediction)
        self.show_preview(prediction.mask, index)

    def record(self, layer: Labels, trace=None) -> None:
        """Note in ``layer`` what made its labels (engine, window, QC trace) for exports."""
        window = self._embeddings.window if self._embeddings is not None else None
        record_provenance(layer, self.engine.describe(), window, trace)

    # ---- the one background job ----------------------------------------------------------
    def start_worker(self, worker, what: str, then: Callable[[], None] | None = None):
        """Run the viewer's one background job; ``on_busy`` listeners hear when it starts/ends."""
        self.worker = worker

        def finished():
            self.worker = None
            if then is not None:
                then()
            if self.worker is None:  # (``then`` may have started the next job)
                for listener in self.on_busy:
                    listener(False)

        worker.finished.connect(finished)
        worker.errored.connect(lambda e: show_error(f"napari-sammed: {what} failed: {e}"))
        for listener in self.on_busy:
            listener(True)
        worker.start()
        return worker

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()


class LayerEmbeddings(VolumeEmbeddings):
    """VolumeEmbeddings for a layer's data; a single RGB slice is passed through unwindowed."""

    def __init__(self, engine, data, window, axis, cache_dir=None, rgb=False):
        self.rgb = rgb
        super().__init__(engine, data if not rgb else data[..., 0], None if rgb else window, axis, cache_dir)
        self.data = data

    def slice_uint8(self, index: int) -> np.ndarray:
        if self.rgb:
            return np.asarray(self.data[index], dtype=np.uint8)
        return super().slice_uint8(index)
