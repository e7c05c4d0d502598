"""GUI test fixtures and helpers: a viewer with the real CT sample, slice navigation, workers."""

import numpy as np
import pytest

from napari_sammed._napari.demo import PLUGIN, SEGMENT_DOCK
from napari_sammed._napari.layers import BOXES
from napari_sammed._napari.segment_widget import WEIGHT_FREE
from napari_sammed._sample_data import sample_ct


@pytest.fixture(autouse=True)
def own_embedding_cache(tmp_path, monkeypatch):
    """Each test embeds from scratch: caches of every window are kept, so one would leak into the next."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def ct_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    for data, kwargs, kind in sample_ct():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    return viewer


def go_to_slice(viewer, layer, index):
    step = list(viewer.dims.current_step)
    step[0] = index
    viewer.dims.current_step = tuple(step)


def draw_box_around(widget, mask, z):
    rows, cols = np.nonzero(mask)
    r0, r1, c0, c1 = rows.min() - 0.5, rows.max() + 0.5, cols.min() - 0.5, cols.max() + 0.5
    rect = np.array([[z, r0, c0], [z, r0, c1], [z, r1, c1], [z, r1, c0]], float)
    widget.viewer.layers[BOXES].add_rectangles(rect)


def wait_for_worker(qtbot, widget):
    """Until the dock's job is over *and* its completion handler has run (it clears ``worker``)."""
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)


def open_segment_dock(viewer, model: str = WEIGHT_FREE):
    """Open the segment dock as the Plugins menu does, with ``model`` (the fast weight-free engine by default)."""
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, SEGMENT_DOCK)
    if widget.model.value != model:
        widget.model.value = model
        widget.load()
    return widget


def press_shift_a(qtbot, viewer):
    """Shift-A on the canvas, as the user presses it (through napari's keymap to the dock)."""
    from qtpy.QtCore import Qt

    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key_A, Qt.ShiftModifier)
