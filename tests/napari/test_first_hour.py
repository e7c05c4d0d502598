"""The first minutes in the dock: ready to draw, names that reach the export, clear devices, a narrow layout."""

import numpy as np
import pytest

from napari_sammed._napari import model_choice, segment_widget
from napari_sammed._napari.demo import PLUGIN, SEGMENT_DOCK
from napari_sammed._napari.export_widget import DOCK_WIDTH as EXPORT_WIDTH
from napari_sammed._napari.layers import BOXES
from napari_sammed._napari.settings import save_settings
from tests.conftest import middle_slice
from tests.napari.conftest import draw_box_around, go_to_slice, open_segment_dock, wait_for_worker

pytestmark = pytest.mark.gui
LIVER = 5


def test_the_dock_opens_ready_to_draw_and_comes_back_to_it_after_accept(ct_viewer, qtbot):
    widget = open_segment_dock(ct_viewer)
    boxes = ct_viewer.layers[BOXES]
    assert ct_viewer.layers.selection.active is boxes and boxes.mode == "add_rectangle"
    assert "Draw a box" in widget.first_step.value and not widget.first_step.native.isHidden()
    image = ct_viewer.layers["CT"]
    widget.image.value = image
    widget.window.value = "ct-soft-tissue"
    reference = ct_viewer.layers["CT reference labels"].data
    z = middle_slice(reference, LIVER)
    go_to_slice(ct_viewer, image, z)
    draw_box_around(widget, reference[z] == LIVER, z)
    wait_for_worker(qtbot, widget)
    qtbot.waitUntil(lambda: widget.last_prediction is not None, timeout=60_000)
    widget.object_id.value = LIVER
    widget.object_name.value = "liver"
    assert widget.accept() > 0
    labels = ct_viewer.layers["CT labels"]  # made by this Accept, which napari makes active
    assert ct_viewer.layers.selection.active is boxes and boxes.mode == "add_rectangle"
    assert labels.metadata["class_names"][LIVER] == "liver"

    # The export dock offers this annotation (not the reference labels) with its class name.
    _dock, export = ct_viewer.window.add_plugin_dock_widget("napari-sammed", "Export training data")
    assert export.labels_layer.value is labels
    assert export.class_names.value == "5=liver"
    image.contrast_limits = (-1000.0, 1000.0)  # the reader looks at bone; the model saw soft tissue
    window = export.build_case().window  # images rendered with the model's window, as the CLI's export
    assert (window.low, window.high) == (-160.0, 240.0)
    widget.object_id.value = 7
    assert widget.object_name.value == ""
    widget.object_id.value = LIVER
    assert widget.object_name.value == "liver"
    other = ct_viewer.add_labels(np.zeros(image.data.shape, np.int32), name="second reader")
    widget.target.value = other  # a name belongs to one layer's object: not carried over
    assert widget.object_name.value == ""


def test_only_devices_this_torch_has_are_offered(make_napari_viewer, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    save_settings(device="cuda")  # remembered from another machine
    viewer = make_napari_viewer()
    widget = open_segment_dock(viewer)
    assert "cuda" not in widget.device.choices and widget.device.value == "auto"
    assert "cpu" in widget.device.choices


def test_a_model_name_stored_by_an_older_version_opens_the_default(make_napari_viewer, monkeypatch, tmp_path):
    # Issue 25 renamed the weight-free menu entry; the old name must not keep the dock from opening.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    save_settings(model="weight-free (classical)")
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, SEGMENT_DOCK)
    assert widget.model.value == segment_widget.BUNDLED


def test_a_model_error_without_a_message_still_says_what_happened(make_napari_viewer, monkeypatch):
    viewer = make_napari_viewer()
    widget = open_segment_dock(viewer)
    loaded = widget.engine

    def broken(*_args, **_kwargs):
        raise AssertionError()  # what torch raises for cuda on a CPU-only build, message or not

    monkeypatch.setattr(model_choice, "load_model", broken)
    widget.model.value = segment_widget.BUNDLED
    widget.load()  # must not escape into Qt (a script without napari.run() would abort)
    assert widget.model_status.value == "not loaded: AssertionError"
    assert widget.engine is loaded


def test_a_long_export_folder_keeps_the_docks_narrow(ct_viewer, qtbot, tmp_path):
    _dock, export = ct_viewer.window.add_plugin_dock_widget("napari-sammed", "Export training data")
    qtbot.wait(50)
    window_width = ct_viewer.window._qt_window.width()
    deep = tmp_path.joinpath(*["a_rather_long_folder_name_for_training_data"] * 8)
    export.folder.value = str(deep)
    export.status.value = "not exported: " + "a very long message that must wrap " * 6
    qtbot.wait(50)
    assert export.native.width() <= EXPORT_WIDTH
    assert ct_viewer.window._qt_window.width() <= window_width  # the window did not grow


def test_embedding_shows_slices_done_and_time_left(ct_viewer, qtbot):
    widget = open_segment_dock(ct_viewer)
    widget.image.value = ct_viewer.layers["CT"]
    widget.window.value = "ct-soft-tissue"
    notes = []
    worker = widget.embed(whole_volume=True)  # yields arrive through Qt's event loop, after this line
    worker.yielded.connect(lambda _done: notes.append(widget.progress_note.value))
    wait_for_worker(qtbot, widget)
    assert any(n.startswith("embedding ") and " / 30 slices" in n for n in notes), notes
    assert any("s left" in n for n in notes), notes
    assert widget.progress_note.value == ""  # cleared when done
    assert widget.session.seconds_per_slice is not None and widget.session.seconds_per_slice > 0
    assert np.isfinite(widget.session.seconds_per_slice)


def test_display_contrast_never_costs_compute_and_earlier_windows_stay_cached(ct_viewer, qtbot):
    from napari_sammed._napari.session import FOLLOW

    widget = open_segment_dock(ct_viewer)
    image = ct_viewer.layers["CT"]
    widget.image.value = image
    assert widget.window.value == "auto"  # the model's window, decided apart from the display
    assert "ct-soft-tissue (auto: CT in Hounsfield units)" in widget.window_note.value
    widget.embed(whole_volume=True)
    wait_for_worker(qtbot, widget)
    store = widget.session.volume_embeddings()
    image.contrast_limits = (-500.0, 500.0)  # the radiologist looks at the image
    assert widget.session.volume_embeddings() is store and store.missing(range(30)) == []
    assert "display contrast changes cost nothing" in widget.window_note.value

    # Asked for on purpose, the model follows the display: a change says what it costs ...
    widget.window.value = FOLLOW
    widget.embed(whole_volume=True)
    wait_for_worker(qtbot, widget)
    image.contrast_limits = (-200.0, 300.0)
    note = widget.window_note.value
    assert "contrast changed" in note and "for all 30" in note and "earlier windows stay cached" in note
    assert widget.session.volume_embeddings().missing(range(30)) == list(range(30))
    # ... and going back to a window seen before re-embeds nothing: its store was kept.
    image.contrast_limits = (-500.0, 500.0)
    assert widget.session.volume_embeddings().missing(range(30)) == []
