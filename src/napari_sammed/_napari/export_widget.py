"""Export dock: an image layer + a labels layer -> SAM-Med2D, nnU-Net v2 or stacks, in a worker.

The image layer's ``metadata`` carries the source geometry (set by our reader and sample data);
the labels layer's ``metadata["napari_sammed"]`` carries what made it (engine, window, QC trace),
recorded by the segment dock, so provenance travels with the layers.
"""

from __future__ import annotations

import re
from dataclasses import fields

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Image, Labels
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info

import napari

from .._writer import layer_geometry
from ..core.errors import InputError
from ..core.export import ExportCase, ExportOptions, ExportReport, export_case
from ..core.export.case import parse_class_names
from ..core.io.qc import TraceRow
from ..core.io.windowing import Window
from .layers import PREVIEW, contrast_window, layer_choice, layer_class_names
from .samaug_layers import layer_priors

#: The dock's widgets that set an :class:`ExportOptions` field (widget attribute -> fields); the
#: settings test checks each against the dataclass. ``samaug`` sets the format's SAMAug option.
SETTINGS = {"format": ("format",), "folder": ("folder",), "axis": ("axis",), "split": ("split",),
            "seed": ("seed",), "test_fraction": ("test_fraction",), "dataset_id": ("dataset_id",),
            "dataset_name": ("dataset_name",), "channel": ("channel",), "include_image": ("include_image",),
            "append_case": ("append",), "overwrite": ("overwrite",), "samaug": ("samaug_channels", "samaug_images")}
DOCK_WIDTH = 360  # as the segment dock: a long folder path must not widen the window
FORMAT_NAMES = {"SAM-Med2D": "sammed2d", "nnU-Net v2": "nnunet", "TIFF stack": "tiff", "zarr stack": "zarr",
           "PNG slices": "png"}


def is_annotation(layer) -> bool:
    """Labels made here (the segment dock records its provenance), or at least not a reference."""
    if not isinstance(layer, Labels) or layer.name == PREVIEW:
        return False
    return "napari_sammed" in layer.metadata or not any(w in layer.name.lower() for w in ("reference", "ground truth"))


def default_labels(viewer) -> Labels | None:
    """The labels layer to preselect: the newest annotation, else the newest labels layer."""
    labels = [layer for layer in viewer.layers if isinstance(layer, Labels) and layer.name != PREVIEW]
    made_here = [layer for layer in labels if "napari_sammed" in layer.metadata]
    for candidates in (made_here, [layer for layer in labels if is_annotation(layer)], labels):
        if candidates:
            return candidates[-1]
    return None


class ExportWidget(Container):
    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.worker = None
        self.image = layer_choice(viewer, "image", Image)
        self.labels_layer = layer_choice(viewer, "labels layer", Labels)
        d = {f.name: f.default for f in fields(ExportOptions)}  # the one source of the settings' defaults
        self.format = ComboBox(label="format", choices=list(FORMAT_NAMES), value="SAM-Med2D")
        self.folder = FileEdit(label="folder", mode="d", value="")
        self.case = LineEdit(label="case name", value="")
        self.class_names = LineEdit(label="class names", value="")
        self.axis = ComboBox(label="slice axis", choices=["z", "y", "x"], value=d["axis"])
        self.split = ComboBox(label="split", choices=["auto", "train", "test"], value=d["split"])
        self.seed = SpinBox(label="split seed", min=0, max=2**31 - 1, value=d["seed"])
        self.test_fraction = FloatSpinBox(label="test fraction", min=0.0, max=1.0, step=0.05,
                                          value=d["test_fraction"])
        self.dataset_id = SpinBox(label="nnU-Net dataset id", min=1, max=999, value=d["dataset_id"])
        self.dataset_name = LineEdit(label="nnU-Net dataset name", value=d["dataset_name"])
        self.channel = LineEdit(label="nnU-Net channel", value=d["channel"])
        self.include_image = CheckBox(text="stacks: write the image too", value=d["include_image"])
        self.append_case = CheckBox(text="add to an existing dataset", value=d["append"])
        self.overwrite = CheckBox(text="replace this case if present", value=d["overwrite"])
        self.samaug = CheckBox(text="with SAMAug priors", value=d["samaug_channels"] or d["samaug_images"],
                               tooltip="nnU-Net: the priors as channels 1 and 2; SAM-Med2D: SAMAug's augmented "
                                       "images. Uses the image's SAMAug layers (whole volume).")
        self.button = PushButton(text="Export")
        self.status = Label(label="status", value="–")
        self.extend([self.image, self.labels_layer, self.format, self.folder, self.case, self.class_names, self.axis,
                     self.split, self.seed, self.test_fraction, self.dataset_id, self.dataset_name, self.channel,
                     self.include_image, self.append_case, self.overwrite, self.samaug, self.button, self.status])
        self.button.changed.connect(lambda: self.export())
        self.image.changed.connect(self._suggest_case)
        self.labels_layer.changed.connect(self._suggest_names)
        self.status.native.setWordWrap(True)
        self.native.setMaximumWidth(DOCK_WIDTH)
        preselected = default_labels(viewer)
        if preselected is not None:
            self.labels_layer.value = preselected
        viewer.layers.events.inserted.connect(self._prefer_new_annotations)
        self._suggest_case()
        self._suggest_names()

    def _prefer_new_annotations(self, event) -> None:
        """A labels layer the segment dock just made is what the user will want to export."""
        if isinstance(event.value, Labels) and is_annotation(event.value) and not is_annotation(self.labels_layer.value):
            self.labels_layer.value = event.value

    def _suggest_case(self, _event=None) -> None:
        if self.image.value is not None:
            self.case.value = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.image.value.name).strip("_.") or "case"

    def _suggest_names(self, _event=None) -> None:
        layer = self.labels_layer.value
        if layer is not None:
            names = layer_class_names(layer)
            self.class_names.value = ", ".join(f"{k}={v}" for k, v in sorted(names.items()))

    def build_case(self) -> ExportCase:
        image, labels = self.image.value, self.labels_layer.value
        if image is None or labels is None:
            raise InputError(None, "choose an image layer and a labels layer")
        data = np.asarray(image.data)
        made_by = labels.metadata.get("napari_sammed", {})
        # The model's window when the segment dock recorded one (as the CLI's export), else the display's.
        recorded = made_by.get("window")
        window = None if image.rgb else (Window(recorded["low"], recorded["high"]) if recorded
                                         else contrast_window(image))
        trace = [TraceRow(**row) for row in made_by.get("trace", [])] or None
        geometry = layer_geometry({"metadata": image.metadata, "scale": image.scale[: data.ndim - int(image.rgb)]})
        sources = [s for s in (image.metadata.get("source"), labels.metadata.get("source")) if s]
        priors = layer_priors(self.viewer, image) if self.samaug.value else None
        return ExportCase(self.case.value.strip(), data, np.asarray(labels.data), geometry,
                          parse_class_names(self.class_names.value), window, made_by.get("engine"), trace, sources,
                          priors)

    def options(self) -> ExportOptions:
        """The dock's values, frozen on the GUI thread for the worker."""
        fmt = FORMAT_NAMES[self.format.value]
        return ExportOptions(
            format=fmt, folder=str(self.folder.value or ""), axis=self.axis.value, split=self.split.value,
            seed=int(self.seed.value), test_fraction=float(self.test_fraction.value),
            dataset_id=int(self.dataset_id.value), dataset_name=self.dataset_name.value.strip(),
            channel=self.channel.value.strip() or "CT", include_image=bool(self.include_image.value),
            append=bool(self.append_case.value), overwrite=bool(self.overwrite.value),
            samaug_channels=bool(self.samaug.value) and fmt == "nnunet",
            samaug_images=bool(self.samaug.value) and fmt == "sammed2d",
        )

    def export(self):
        if self.worker is not None:
            return self.worker
        try:
            case = self.build_case()
            case.validate()
            options = self.options()
        except ValueError as error:
            return self._failed(error)

        @thread_worker(progress={"total": 0, "desc": "Exporting"})
        def work():
            try:
                return export_case(case, options)
            except (ValueError, OSError) as error:  # bad input / existing data: a message, not a crash
                return str(error)  # (a returned exception would be raised again by the worker)

        worker = work()
        self.worker = worker
        self.button.enabled = False
        self.status.value = "exporting…"
        worker.returned.connect(self._done)
        worker.errored.connect(self._failed)
        worker.finished.connect(self._finished)
        worker.start()
        return worker

    def _done(self, report: ExportReport | str) -> None:
        if isinstance(report, str):
            self._failed(report)
            return
        target = report.dataset
        self.status.value = f"exported to {target}"
        show_info(f"napari-sammed: exported {self.case.value} to {target}")

    def _failed(self, error) -> None:
        self.status.value = f"not exported: {error}"
        show_error(f"napari-sammed: export failed: {error}")

    def _finished(self) -> None:
        self.worker = None
        self.button.enabled = True
