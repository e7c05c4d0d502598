"""The state one viewer's docks share: engine, embeddings, current image/labels/axis, one job.

The segment dock owns the controls and keeps this object's fields current; its propagate and
SAMAug panels read and act through it, never through another widget's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error

from ..core.engine.slice_engine import Prediction, SliceEngine
from ..core.io.windowing import AUTO_PRESET, Window, describe_window, resolve_window
from ..core.volume.embeddings import VolumeEmbeddings
from .interactive import Interactive3D
from .layers import PREVIEW, contrast_window, record_provenance, slice_key
from .settings import cache_dir

FOLLOW = "follow contrast limits"


@dataclass(frozen=True)
class Preview:
    """A decoded prompt and exactly where it belongs: Accept and propagate write there or refuse."""

    image: Image
    axis: int | None
    index: int
    prediction: Prediction


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

    @property
    def last_prediction(self) -> Prediction | None:
        return None if self.preview is None else self.preview.prediction

    def preview_here(self) -> Preview | None:
        """The preview, if it belongs to the current image and slice axis (else None)."""
        p = self.preview
        return p if p is not None and p.image is self.image and p.axis == self.slice_axis() else None

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

    def set_preview(self, prediction: Prediction, index: int) -> None:
        """Show ``prediction`` as the preview of slice ``index`` of the current image."""
        self.preview = Preview(self.image, self.slice_axis(), index, prediction)
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
            for listener in self.on_busy:
                listener(False)
            if then is not None:
                then()

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
