"""Issue 25 item 3: each export-dock widget that sets an ExportOptions field starts at its default."""

from __future__ import annotations

import dataclasses

from napari_sammed._napari.export_widget import FORMAT_NAMES, SETTINGS
from napari_sammed.core.export.entry import ExportOptions


def test_dock_fields_are_export_settings_with_their_defaults(make_napari_viewer):
    _dock, widget = make_napari_viewer().window.add_plugin_dock_widget("napari-sammed", "Export training data")
    defaults = {f.name: f.default for f in dataclasses.fields(ExportOptions)}
    for attribute, names in SETTINGS.items():
        assert all(name in defaults for name in names), f"dock {attribute} sets no ExportOptions field"
        value = getattr(widget, attribute).value
        if attribute == "format":
            value = FORMAT_NAMES[value]
        for name in names:
            if defaults[name] is not dataclasses.MISSING:
                assert value == defaults[name], f"dock {attribute} starts at {value!r}, ExportOptions.{name} at {defaults[name]!r}"
    # every settings widget is listed, so none escapes the check
    listed = {w for w in SETTINGS} | {"image", "labels_layer", "case", "class_names", "button", "status"}
    assert {name for name, value in vars(widget).items() if hasattr(value, "native") and not name.startswith("_")} <= listed
