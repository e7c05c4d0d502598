"""Segment dock: model, intensity window, embeddings, prompts -> preview -> accept into labels.

Laid out as tabs (model · segment · propagate · SAMAug) under an always-visible image picker,
so the dock stays short and the canvas keeps most of the window.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, LineEdit, PushButton, SpinBox
from napari.layers import Image, Labels
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QTabWidget

import napari

from ..core.engine.slice_engine import SliceEngine
from ..core.io.error_text import first_line
from ..core.io.windowing import AUTO_PRESET, CT_PRESETS, PERCENTILE_PRESET
from .layers import BOXES, POINTS, layer_choice, metadata_class_names
from .model_choice import (
    BUNDLED,
    CHECKPOINT,
    LOAD_ERRORS,
    WEIGHT_FREE,
    device_choices,
    load_choice,
    model_summary,
    resolve_choice,
)
from .preview import NOTHING
from .progress import ProgressNote
from .prompt_layers import ensure_prompt_layers, ready_to_draw
from .propagate_panel import PropagatePanel
from .session import FOLLOW, Session
from .settings import load_settings, save_settings

DOCK_WIDTH = 360
NEW_LABELS = "a new '<image> labels' layer is made on the first Accept"
FIRST_STEP = "Draw a box around an organ ('SAM boxes' is ready), then Shift-A to accept."
HELP = (
    "Click in 'SAM points' (positive; tick 'negative clicks' or press T for negative) or draw a "
    "rectangle in 'SAM boxes': the preview updates at once. Shift-A accept, Shift-N next object, "
    "Escape clear prompts, Ctrl+Z / Ctrl+Shift+Z undo/redo in the labels layer."
)


def _page(*widgets) -> Container:
    page = Container(labels=True)
    page.extend(widgets)
    page.native.layout().addStretch()  # keep controls together at the top of the tab
    return page


class SegmentWidget(Container):
    """Dock widget; one per viewer, holding that viewer's :class:`Session` (no globals)."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.session = Session(viewer)
        stored = load_settings()

        # always visible
        self.image = layer_choice(viewer, "image", Image)
        self.model_status = Label(label="model", value="")
        self.first_step = Label(value=FIRST_STEP)
        self.preview_note = Label(label="preview", value="–")  # what Shift-A writes, or why it writes nothing
        self.progress_note = Label(value="")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        # model
        models = [BUNDLED, CHECKPOINT, WEIGHT_FREE]  # a name stored by an older version: the default
        self.model = ComboBox(label="model", choices=models, value=stored.get("model") if stored.get("model") in models
                              else BUNDLED)
        self.checkpoint = FileEdit(label="checkpoint", mode="r", filter="*.pth *.pt *.safetensors",
                                   value=stored.get("checkpoint", ""))
        devices = device_choices()  # only what this machine has: cuda on a CPU-only torch is not offered
        self.device = ComboBox(label="device", choices=devices,
                               value=stored.get("device") if stored.get("device") in devices else "auto")
        self.precision = ComboBox(label="precision", choices=["fp32", "bf16", "fp16"], value=stored.get("precision", "fp32"))
        self.load_button = PushButton(text="Load model")
        self.axis = ComboBox(label="slice axis", choices=["z", "y", "x"], value="z")
        # The model's window is chosen here, on purpose; the display's contrast is the user's to play with.
        self.window = ComboBox(label="model window", choices=[AUTO_PRESET, FOLLOW, *CT_PRESETS, PERCENTILE_PRESET],
                               value=AUTO_PRESET)
        self.window_note = Label(value="")
        self.embed_slice_button = PushButton(text="Embed current slice")
        self.embed_volume_button = PushButton(text="Embed whole volume")
        # segment
        self.target = layer_choice(viewer, "labels layer", Labels, nullable=True)
        self.target_hint = Label(value=NEW_LABELS)
        self.object_id = SpinBox(label="object id", min=1, max=65535, value=1)
        self.object_name = LineEdit(label="name", value="")
        self.overwrite = CheckBox(text="paint over other objects", value=False)
        self.negative = CheckBox(text="negative clicks (T)", value=False)
        self.auto_3d = CheckBox(text="auto-update 3D", value=True,
                                tooltip="an accepted slice updates the whole object in 3D")
        self.z_first_button = PushButton(text="first", tooltip="the object's first slice is the one shown")
        self.z_last_button = PushButton(text="last", tooltip="the object's last slice is the one shown")
        self.z_clear_button = PushButton(text="clear", tooltip="forget the object's z-range")
        self.z_buttons = Container(layout="horizontal", labels=False, label="z-range here",
                                   widgets=[self.z_first_button, self.z_last_button, self.z_clear_button])
        self.z_buttons.margins = (0, 0, 0, 0)
        self.object_3d = Label(label="3D", value="–")
        self.accept_button = PushButton(text="Accept (Shift-A)")
        self.next_button = PushButton(text="Next object (Shift-N)")
        self.clear_button = PushButton(text="Clear prompts (Esc)")
        # SAMAug
        self.samaug_scope = ComboBox(label="SAMAug on", choices=["current slice", "whole volume"])
        self.samaug_button = PushButton(text="SAMAug priors")
        self.propagation = PropagatePanel(self.session)

        self.extend([self.image, self.model_status, self.first_step, self.preview_note])
        self.tabs = QTabWidget()
        for title, page in (
            ("Segment", _page(self.target, self.target_hint, self.object_id, self.object_name,
                              self.overwrite, self.negative,
                              self.accept_button, self.next_button, self.clear_button,
                              self.auto_3d, self.z_buttons, self.object_3d)),
            ("Propagate", self.propagation),
            ("SAMAug", _page(self.samaug_scope, self.samaug_button)),
            ("Model", _page(self.model, self.checkpoint, self.device, self.precision, self.load_button,
                            self.axis, self.window, self.embed_slice_button, self.embed_volume_button)),
        ):
            self.tabs.addTab(page.native, title)
        self.native.layout().addWidget(self.tabs)
        self.extend([self.window_note, self.progress_note, self.cancel_button])
        self.native.layout().addStretch()
        for label in (self.model_status, self.first_step, self.preview_note, self.window_note, self.progress_note,
                      self.target_hint, self.object_3d):
            label.native.setWordWrap(True)
        self.native.setMaximumWidth(DOCK_WIDTH)  # leave the canvas most of a laptop screen
        self.native.setToolTip(HELP)

        self.load_button.changed.connect(self.load)
        self.model.changed.connect(self._sync_model_choice)
        self.checkpoint.changed.connect(self._on_checkpoint_picked)
        self.embed_slice_button.changed.connect(lambda: self.embed(whole_volume=False))
        self.embed_volume_button.changed.connect(lambda: self.embed(whole_volume=True))
        self.cancel_button.changed.connect(self.session.cancel)
        self.accept_button.changed.connect(self.accept)
        self.next_button.changed.connect(self.next_object)
        self.clear_button.changed.connect(self.clear_prompts)
        self.samaug_button.changed.connect(lambda: self.start_samaug())
        self.negative.changed.connect(self._sync_point_sign)
        self.image.changed.connect(self._on_image_changed)
        self.target.changed.connect(self._sync_session)
        for control in (self.axis, self.window, self.object_id, self.overwrite):
            control.changed.connect(self._sync_session)
        self.session.on_busy.append(self._on_busy)
        self.session.on_new_labels.append(self._select_new_labels)
        self.session.on_confirmed.append(self._show_object_3d)
        self.z_first_button.changed.connect(lambda: self.mark_z(0))
        self.z_last_button.changed.connect(lambda: self.mark_z(1))
        self.z_clear_button.changed.connect(lambda: self.mark_z(None))
        self.viewer.dims.events.current_step.connect(lambda _e: self.segment())
        for key, action in (("Shift-A", self.accept), ("Shift-N", self.next_object),
                            ("Escape", self.clear_prompts), ("T", self._toggle_sign)):
            self.viewer.bind_key(key, lambda _v, a=action: a(), overwrite=True)
        for control in (self.object_id, self.target, self.image):  # a name belongs to one object of one layer
            control.changed.connect(self._show_object_name)
        self._sync_model_choice()
        self.load()
        self._on_image_changed()
        ready_to_draw(self.viewer)

    # ---- shared state --------------------------------------------------------------------
    @property
    def engine(self) -> SliceEngine | None:
        return self.session.engine

    @property
    def worker(self):
        return self.session.worker

    @property
    def last_prediction(self):
        """The prediction of the slice shown (what Shift-A writes), else None."""
        preview = self.session.preview_here()
        return None if preview is None else preview.prediction

    @property
    def image_layer(self) -> Image | None:
        return self.image.value

    def _sync_session(self, _event=None) -> None:
        """Copy the dock's controls into the session the panels read."""
        s = self.session
        s.image, s.labels = self.image.value, self.target.value
        s.axis_name, s.window_choice = self.axis.value, self.window.value
        s.set_object(self.object_id.value)
        s.overwrite = bool(self.overwrite.value)
        self.target_hint.visible = self.target.value is None
        self.show_window_note()
        self.show_note()
        if s.labels is not None:
            s.interactive.watch(s.labels)
        self._show_object_3d()

    def show_note(self) -> None:
        self.preview_note.value = self.session.note()

    def show_window_note(self, _event=None) -> None:
        """What the model sees and what changing it costs (shown under the tabs)."""
        self.window_note.value = self.session.window_note()

    def mark_z(self, end: int | None) -> None:
        """Mark the current slice as the first (0) or last (1) of the object's z-range; None clears it."""
        object_id = int(self.object_id.value)
        if end is None:
            self.session.z_ranges.pop(object_id, None)
        else:
            self.session.z_ranges.setdefault(object_id, [None, None])[end] = self.current_index()
        self._show_object_3d()

    def _show_object_3d(self) -> None:
        self.object_3d.value = self.session.object_3d_note(int(self.object_id.value))

    def slice_axis(self) -> int | None:
        return self.session.slice_axis()

    def current_index(self) -> int:
        return self.session.current_index()

    def volume_embeddings(self):
        return self.session.volume_embeddings()

    # ---- model ---------------------------------------------------------------------------
    def _sync_model_choice(self, _event=None) -> None:
        self.checkpoint.enabled = self.model.value == CHECKPOINT
        if self.model.value == CHECKPOINT and str(self.checkpoint.value or "") in ("", "."):
            self.model_status.value = "pick a checkpoint file, then Load model"

    def _on_checkpoint_picked(self, _event=None) -> None:
        if str(self.checkpoint.value or "") not in ("", "."):
            self.model.value = CHECKPOINT

    def load(self) -> None:
        """Load the chosen model (LiteMedSAM unless a checkpoint or the weight-free engine is picked)."""
        path = str(self.checkpoint.value or "")
        choice = resolve_choice(self.model.value, path)
        try:
            model = load_choice(choice, path, self.device.value, self.precision.value)
        except LOAD_ERRORS as error:
            message = first_line(error)
            show_error(f"napari-sammed: model not loaded: {message}")
            self.model_status.value = f"not loaded: {message}"
            return
        self.session.engine = SliceEngine(model)
        self.session.forget_embeddings()
        self.model_status.value = model_summary(self.session.engine, bundled=choice == BUNDLED)
        self.model.value = choice
        save_settings(model=choice, checkpoint=path if choice == CHECKPOINT else "",
                      device=self.device.value, precision=self.precision.value)

    # ---- image / prompt layers -----------------------------------------------------------
    def _on_image_changed(self, _event=None) -> None:
        self._sync_session()
        layer = self.image_layer
        if layer is None:
            return
        if layer.rgb and layer.ndim != 2 or layer.ndim > 3:
            show_error(f"napari-sammed: {layer.name} has shape {layer.data.shape}; use a 2D image, "
                       "an RGB 2D image or a 3D volume (split channels first)")
            return
        ensure_prompt_layers(self.viewer, layer, self.segment)
        layer.events.contrast_limits.connect(self.show_window_note)

    def _show_object_name(self, _event=None) -> None:
        layer = self.target.value
        names = metadata_class_names(layer) if layer is not None else {}
        self.object_name.value = names.get(int(self.object_id.value), "")

    def _remember_object_name(self, layer: Labels, name: str) -> None:
        """The name typed for this object goes into the layer, where exports read class names."""
        if name:
            layer.metadata["class_names"] = metadata_class_names(layer) | {int(self.object_id.value): name}
        self._show_object_name()

    def _sync_point_sign(self, _event=None) -> None:
        if POINTS in self.viewer.layers:
            self.viewer.layers[POINTS].feature_defaults["positive"] = not self.negative.value

    def _toggle_sign(self) -> None:
        self.negative.value = not self.negative.value

    # ---- segmentation --------------------------------------------------------------------
    def segment(self) -> None:
        """Decode the shown slice's prompt into the preview. A slice not embedded yet is embedded
        first, in a worker, and decoded when that job (or the one running) ends."""
        if self.engine is None or self.image_layer is None or POINTS not in self.viewer.layers:
            return
        index = self.current_index()
        self.session.waiting = None if self.session.decode(index) else index
        if self.session.waiting is not None:
            self.embed(whole_volume=False)
        self.show_note()

    def _on_busy(self, busy: bool) -> None:
        self.cancel_button.enabled = busy
        if not busy and self.session.waiting is not None:  # a prompt waited for this job to end
            self.segment()

    # ---- embeddings in a worker ----------------------------------------------------------
    def embed(self, whole_volume: bool = True):
        """Embed the current slice or the whole volume in a worker (progress bar, Cancel)."""
        if self.engine is None or self.image_layer is None:
            show_info("napari-sammed: choose an image first")
            return None
        if self.worker is not None:
            return self.worker
        store = self.volume_embeddings()
        wanted = list(range(store.n_slices)) if whole_volume else [self.current_index()]
        step = self.engine.batch_size

        @thread_worker(progress={"total": len(wanted), "desc": "Embedding slices"})
        def run():
            todo = store.missing(wanted)  # opens (and hashes for) the disk cache, off the GUI thread
            yield len(wanted) - len(todo)
            for start in range(0, len(todo), step):
                store.compute(todo[start : start + step])
                yield len(wanted) - len(todo) + min(start + step, len(todo))

        def then():
            self.progress_note.value = ""
            self.show_window_note()
            waiting = self.session.waiting
            if waiting in wanted and not store.is_embedded(waiting):  # failed or cancelled:
                self.session.waiting = None  # not started again at once (a new prompt retries)
                self.show_note()

        worker = run()
        worker.yielded.connect(ProgressNote(self.progress_note, len(wanted), "embedding", self.session))
        return self.session.start_worker(worker, "embedding", then)

    def start_samaug(self, settings=None):
        """Write/update the three SAMAug layers for the current slice or the whole volume."""
        from ..core.settings import AmgSettings
        from .samaug_layers import samaug_worker

        if self.engine is None or self.image_layer is None or self.worker is not None:
            return None
        worker, _layers = samaug_worker(self.session, self.samaug_scope.value == "whole volume",
                                        settings or AmgSettings())
        return self.session.start_worker(worker, "SAMAug")

    def cancel(self) -> None:
        self.session.cancel()

    # ---- accepting results ---------------------------------------------------------------
    def _select_new_labels(self, layer: Labels) -> None:
        self.target.reset_choices()
        self.target.value = layer

    def accept(self):
        """Write the preview of the slice shown into the labels layer as one undoable step; returns
        voxels written (0, with the reason in the status line, when there is none to write).

        With *auto-update 3D*, when the object already has voxels on other slices (or a z-range),
        the slice is confirmed and the whole object is updated in a worker instead; returns it.
        """
        preview = self.session.preview_here()
        if preview is None:
            return self._refuse(self.session.note(empty=NOTHING))
        if self.worker is not None:
            return self._refuse("wait for the running job (or Cancel it) before accepting")
        name = self.object_name.value.strip()  # read first: a new labels layer resets the field
        self._remember_object_name(self.session.target_layer(), name)
        result, note = self.session.write_preview(preview, auto_3d=self.auto_3d.value)
        self._show_object_3d()
        self.clear_prompts()
        self.preview_note.value = note
        ready_to_draw(self.viewer)  # the new labels layer took the focus; the next box is drawn at once
        return result

    def _refuse(self, why: str) -> int:
        """Accept writes nothing: say why in the status line (and in a notification)."""
        self.preview_note.value = why
        show_info(f"napari-sammed: {why}")
        return 0

    def next_object(self) -> None:
        layer = self.target.value
        top = int(np.asarray(layer.data).max()) if layer is not None else 0
        self.object_id.value = max(top, int(self.object_id.value)) + 1
        self.clear_prompts()
        ready_to_draw(self.viewer)

    def clear_prompts(self) -> None:
        for name in (POINTS, BOXES):
            if name in self.viewer.layers:
                layer = self.viewer.layers[name]
                layer.data = [] if name == BOXES else np.zeros((0, layer.ndim))
        self.session.show_preview(None)
        self.show_note()
