"""Segment dock: model, intensity window, embeddings, prompts -> preview -> accept into labels."""

from __future__ import annotations

import time

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton, SpinBox
from napari.layers import Image, Labels
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info

from ..core.api import load_model
from ..core.classical import LABEL as WEIGHT_FREE_LABEL
from ..core.engine import SliceEngine
from ..core.volume import VolumeEmbeddings
from ..core.windowing import CT_PRESETS, PERCENTILE_PRESET, Window, resolve_window
from .layers import (
    BOXES,
    POINTS,
    PREVIEW,
    contrast_window,
    layer_choice,
    prompt_for_slice,
    slice_key,
    write_mask,
)
from .propagate_panel import PropagatePanel, record_provenance
from .settings import cache_dir, load_settings, save_settings

FOLLOW = "follow contrast limits"
HELP = (
    "Click in 'SAM points' (positive; tick 'negative clicks' or press T for negative) or draw a "
    "rectangle in 'SAM boxes': the preview updates at once. Shift-A accept, Shift-N next object, "
    "Escape clear prompts, Ctrl+Z / Ctrl+Shift+Z undo/redo in the labels layer."
)


class SegmentWidget(Container):
    """Dock widget; one per viewer, holding that viewer's engine and embeddings (no globals)."""

    def __init__(self, viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.engine: SliceEngine | None = None
        self.embeddings: VolumeEmbeddings | None = None
        self._embed_key: tuple | None = None
        self.worker = None
        self.last_prediction = None
        self.last_latency_ms: float | None = None
        stored = load_settings()

        self.checkpoint = FileEdit(label="checkpoint", mode="r", filter="*.pth *.pt *.safetensors",
                                   value=stored.get("checkpoint", ""))
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"], value=stored.get("device", "auto"))
        self.precision = ComboBox(label="precision", choices=["fp32", "bf16", "fp16"], value=stored.get("precision", "fp32"))
        self.load_button = PushButton(text="Load model")
        self.model_status = Label(label="model", value="")
        self.image = layer_choice(viewer, "image", Image)
        self.axis = ComboBox(label="slice axis", choices=["z", "y", "x"], value="z")
        self.window = ComboBox(label="intensity", choices=[FOLLOW, *CT_PRESETS, PERCENTILE_PRESET], value=FOLLOW)
        self.embed_slice_button = PushButton(text="Embed current slice")
        self.embed_volume_button = PushButton(text="Embed whole volume")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.target = layer_choice(viewer, "labels layer", Labels, nullable=True)
        self.object_id = SpinBox(label="object id", min=1, max=65535, value=1)
        self.overwrite = CheckBox(text="paint over other objects", value=False)
        self.negative = CheckBox(text="negative clicks (T)", value=False)
        self.quality = Label(label="predicted IoU", value="–")
        self.accept_button = PushButton(text="Accept (Shift-A)")
        self.next_button = PushButton(text="Next object (Shift-N)")
        self.clear_button = PushButton(text="Clear prompts (Esc)")
        self.samaug_scope = ComboBox(label="SAMAug on", choices=["current slice", "whole volume"])
        self.samaug_button = PushButton(text="SAMAug priors")
        self.extend([
            self.checkpoint, self.device, self.precision, self.load_button, self.model_status,
            self.image, self.axis, self.window, self.embed_slice_button, self.embed_volume_button,
            self.cancel_button, self.target, self.object_id, self.overwrite, self.negative, self.quality,
            self.accept_button, self.next_button, self.clear_button, self.samaug_scope, self.samaug_button,
        ])
        self.propagation = PropagatePanel(self)
        self.append(self.propagation)
        self.native.setToolTip(HELP)

        self.load_button.changed.connect(self.load)
        self.embed_slice_button.changed.connect(lambda: self.embed(whole_volume=False))
        self.embed_volume_button.changed.connect(lambda: self.embed(whole_volume=True))
        self.cancel_button.changed.connect(self.cancel)
        self.accept_button.changed.connect(self.accept)
        self.next_button.changed.connect(self.next_object)
        self.clear_button.changed.connect(self.clear_prompts)
        self.samaug_button.changed.connect(lambda: self.run_samaug())
        self.negative.changed.connect(self._sync_point_sign)
        self.image.changed.connect(self._on_image_changed)
        self.viewer.dims.events.current_step.connect(lambda _e: self.segment())
        for key, action in (("Shift-A", self.accept), ("Shift-N", self.next_object),
                            ("Escape", self.clear_prompts), ("T", self._toggle_sign)):
            self.viewer.bind_key(key, lambda _v, a=action: a(), overwrite=True)
        self.load()
        self._on_image_changed()

    # ---- model ---------------------------------------------------------------------------
    def load(self) -> None:
        path = str(self.checkpoint.value or "")
        if path in ("", "."):
            path = None
        try:
            model = load_model(path, device=self.device.value, dtype=self.precision.value)
        except (ValueError, RuntimeError) as error:
            show_error(f"napari-sammed: {error}")
            self.model_status.value = f"not loaded: {error}"
            return
        self.engine = SliceEngine(model)
        self.embeddings, self._embed_key = None, None
        if path is None:
            self.model_status.value = f"no checkpoint -> {WEIGHT_FREE_LABEL}"
        else:
            spec = model.spec
            self.model_status.value = f"{spec.kind} ({spec.img_size}px) sha256 {model.checkpoint_sha256[:12]}…"
            save_settings(checkpoint=path, device=self.device.value, precision=self.precision.value)

    # ---- image / slices ------------------------------------------------------------------
    @property
    def image_layer(self) -> Image | None:
        return self.image.value

    def _slice_axis(self) -> int | None:
        layer = self.image_layer
        if layer is None or layer.ndim == 2:
            return None
        return "zyx".index(self.axis.value)

    def current_index(self) -> int:
        axis = self._slice_axis()
        if axis is None:
            return 0
        coords = self.image_layer.world_to_data(self.viewer.dims.point)
        return int(np.clip(np.rint(coords[axis]), 0, self.image_layer.data.shape[axis] - 1))

    def current_window(self) -> Window | None:
        layer = self.image_layer
        if self.window.value == FOLLOW:
            return contrast_window(layer)
        return resolve_window(np.asarray(layer.data), self.window.value)

    def _on_image_changed(self, _event=None) -> None:
        layer = self.image_layer
        if layer is None:
            return
        if layer.rgb and layer.ndim != 2 or layer.ndim > 3:
            show_error(f"napari-sammed: {layer.name} has shape {layer.data.shape}; use a 2D image, "
                       "an RGB 2D image or a 3D volume (split channels first)")
            return
        self._ensure_prompt_layers(layer)

    def volume_embeddings(self) -> VolumeEmbeddings:
        """Embeddings for the current (image, window, axis, model); rebuilt when any changes."""
        layer = self.image_layer
        window = self.current_window()
        axis = self._slice_axis()
        key = (id(layer), window, axis, id(self.engine))
        if self._embed_key != key or self.embeddings is None:
            data = np.asarray(layer.data)
            if layer.rgb:
                data = data[None]  # one RGB slice
            elif axis is None:
                data = data[None]
            self.embeddings = _LayerEmbeddings(self.engine, data, window, 0 if axis is None else axis,
                                               cache_dir=cache_dir() if data.shape[0] > 1 else None,
                                               rgb=bool(layer.rgb))
            self._embed_key = key
        return self.embeddings

    # ---- prompt layers ------------------------------------------------------------------
    def _ensure_prompt_layers(self, image: Image) -> None:
        ndim = 2 if image.rgb else image.ndim
        shape = image.data.shape[:ndim]
        common = {"scale": image.scale[:ndim], "translate": image.translate[:ndim]}
        if POINTS not in self.viewer.layers:
            points = self.viewer.add_points(
                np.zeros((0, ndim)), name=POINTS, ndim=ndim, size=max(shape[-2:]) / 40,
                features={"positive": np.zeros(0, bool)}, face_color="positive",
                face_color_cycle=["#ff3030", "#30ff30"], **common)
            points.feature_defaults["positive"] = True
            points.mode = "add"
            points.events.data.connect(lambda _e: self.segment())
        if BOXES not in self.viewer.layers:
            boxes = self.viewer.add_shapes(name=BOXES, ndim=ndim, edge_color="yellow", face_color="transparent",
                                           edge_width=max(shape[-2:]) / 200, **common)
            boxes.events.data.connect(lambda _e: self.segment())
        if PREVIEW not in self.viewer.layers or self.viewer.layers[PREVIEW].data.shape != shape:
            if PREVIEW in self.viewer.layers:
                self.viewer.layers.remove(PREVIEW)
            self.viewer.add_labels(np.zeros(shape, np.uint8), name=PREVIEW, opacity=0.5, **common)

    def _sync_point_sign(self, _event=None) -> None:
        if POINTS in self.viewer.layers:
            self.viewer.layers[POINTS].feature_defaults["positive"] = not self.negative.value

    def _toggle_sign(self) -> None:
        self.negative.value = not self.negative.value

    def current_prompt(self):
        points = self.viewer.layers[POINTS]
        boxes = self.viewer.layers[BOXES]
        rects = [d for d, t in zip(boxes.data, boxes.shape_type, strict=True) if t == "rectangle"]
        positive = points.features["positive"].to_numpy() if len(points.data) else np.zeros(0, bool)
        return prompt_for_slice(np.asarray(points.data), positive, rects, self._slice_axis(), self.current_index())

    # ---- segmentation --------------------------------------------------------------------
    def segment(self) -> None:
        """Decode the current slice's prompts into the preview (embedding first if needed)."""
        if self.engine is None or self.image_layer is None or POINTS not in self.viewer.layers:
            return
        started = time.perf_counter()
        prompt = self.current_prompt()
        index = self.current_index()
        preview = self.viewer.layers[PREVIEW]
        if prompt is None:
            self._show_preview(None, index)
            return
        store = self.volume_embeddings()
        if not store.is_embedded(index):
            self.embed(whole_volume=False, then_segment=True)
            return
        pred = self.engine.predict_batch(store.get(index), store.slice_shape, [prompt])[0]
        self.last_prediction = pred
        self._show_preview(pred.mask, index)
        self.quality.value = f"{pred.iou:.3f}"
        self.last_latency_ms = (time.perf_counter() - started) * 1000
        preview.refresh()

    def _show_preview(self, mask, index: int) -> None:
        preview = self.viewer.layers[PREVIEW]
        preview.data[...] = 0
        if mask is not None:
            preview.data[slice_key(self._slice_axis(), index, preview.data.ndim)] = mask.astype(np.uint8)
        else:
            self.last_prediction = None
            self.quality.value = "–"
        preview.refresh()

    # ---- embeddings in a worker ----------------------------------------------------------
    def embed(self, whole_volume: bool = True, then_segment: bool = False):
        if self.engine is None or self.image_layer is None:
            show_info("napari-sammed: choose an image first")
            return None
        if self.worker is not None:
            return self.worker
        store = self.volume_embeddings()
        todo = [i for i in (range(store.n_slices) if whole_volume else [self.current_index()])
                if not store.is_embedded(i)]
        if not todo:
            if then_segment:
                self.segment()
            return None
        step = self.engine.batch_size

        @thread_worker(progress={"total": len(todo), "desc": "Embedding slices"})
        def run():
            for start in range(0, len(todo), step):
                store.compute(todo[start : start + step])
                yield min(start + step, len(todo))

        def then():
            if then_segment and store.is_embedded(self.current_index()):
                self.segment()

        return self._start_worker(run(), "embedding", then)

    def run_samaug(self, settings=None):
        """Write/update the three SAMAug layers for the current slice or the whole volume."""
        from ..core.amg import AmgSettings
        from .samaug_layers import samaug_worker

        if self.engine is None or self.image_layer is None or self.worker is not None:
            return None
        worker, _layers = samaug_worker(self, self.samaug_scope.value == "whole volume", settings or AmgSettings())
        return self._start_worker(worker, "SAMAug")

    def _start_worker(self, worker, what: str, then=None):
        """Run the dock's one background job; Cancel is live while it runs."""
        self.worker = worker
        self.cancel_button.enabled = True

        def finished():
            self.worker = None
            self.cancel_button.enabled = False
            if then is not None:
                then()

        worker.finished.connect(finished)
        worker.errored.connect(lambda e: show_error(f"napari-sammed: {what} failed: {e}"))
        worker.start()
        return worker

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()

    # ---- accepting results ---------------------------------------------------------------
    def target_layer(self) -> Labels:
        if self.target.value is None:
            image = self.image_layer
            shape = image.data.shape[:2] if image.rgb else image.data.shape
            layer = self.viewer.add_labels(np.zeros(shape, np.int32), name=f"{image.name} labels",
                                           scale=image.scale[: len(shape)], translate=image.translate[: len(shape)],
                                           metadata=dict(image.metadata))
            self.target.reset_choices()
            self.target.value = layer
        return self.target.value

    def accept(self) -> int:
        """Write the preview into the labels layer as one undoable step; returns voxels written."""
        if self.last_prediction is None:
            show_info("napari-sammed: nothing to accept - add a prompt first")
            return 0
        layer = self.target_layer()
        written = write_mask(layer, self.last_prediction.mask, self._slice_axis(), self.current_index(),
                             int(self.object_id.value), overwrite=self.overwrite.value)
        record_provenance(layer, self)
        self.clear_prompts()
        return written

    def next_object(self) -> None:
        layer = self.target.value
        top = int(np.asarray(layer.data).max()) if layer is not None else 0
        self.object_id.value = max(top, int(self.object_id.value)) + 1
        self.clear_prompts()

    def clear_prompts(self) -> None:
        for name in (POINTS, BOXES):
            if name in self.viewer.layers:
                layer = self.viewer.layers[name]
                layer.data = [] if name == BOXES else np.zeros((0, layer.ndim))
        if PREVIEW in self.viewer.layers:
            self._show_preview(None, 0)


class _LayerEmbeddings(VolumeEmbeddings):
    """VolumeEmbeddings for a layer's data; a single RGB slice is passed through unwindowed."""

    def __init__(self, engine, data, window, axis, cache_dir=None, rgb=False):
        self.rgb = rgb
        if rgb:
            window = None
        super().__init__(engine, data if not rgb else data[..., 0], window, axis, cache_dir)
        self.data = data

    def slice_uint8(self, index: int) -> np.ndarray:
        if self.rgb:
            return np.asarray(self.data[index], dtype=np.uint8)
        return super().slice_uint8(index)
