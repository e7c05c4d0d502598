"""Headless GUI tests (Xvfb): the segment dock on the real CT sample."""

import numpy as np
import pytest

from napari_sammed._napari.demo import PLUGIN, SEGMENT_DOCK
from napari_sammed._napari.layers import BOXES, POINTS, PREVIEW
from tests.conftest import dice, middle_slice
from tests.napari.conftest import (
    draw_box_around,
    go_to_slice,
    open_segment_dock,
    press_shift_a,
    wait_for_worker,
)

pytestmark = pytest.mark.gui


def test_default_dock_is_lite_medsam_box_preview_accept_undo_redo(ct_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # a first start: no remembered model
    _dock, widget = ct_viewer.window.add_plugin_dock_widget(PLUGIN, SEGMENT_DOCK)
    assert widget.model.value == "LiteMedSAM (bundled)" and widget.engine.label == "LiteMedSAM"
    assert "LiteMedSAM (bundled, medical, box prompts)" in widget.model_status.value
    image = ct_viewer.layers["CT"]
    widget.image.value = image
    widget.window.value = "ct-soft-tissue"
    reference = ct_viewer.layers["CT reference labels"].data
    z = middle_slice(reference, 5)
    go_to_slice(ct_viewer, image, z)
    assert widget.current_index() == z
    target = ct_viewer.add_labels(np.zeros(image.data.shape, np.int32), name="annotations", scale=image.scale)
    target.data[z, :5, :5] = 7  # a pre-existing manual edit elsewhere on the slice
    widget.target.reset_choices()
    widget.target.value = target
    before = target.data.copy()

    draw_box_around(widget, reference[z] == 5, z)
    wait_for_worker(qtbot, widget)
    qtbot.waitUntil(lambda: widget.last_prediction is not None, timeout=60_000)
    preview = ct_viewer.layers[PREVIEW].data[z] > 0
    assert dice(preview, reference[z] == 5) >= 0.9  # measured 0.951 (core test: same box, same slice)
    assert widget.preview_note.value.startswith(f"slice {z} · object 1 · predicted IoU")

    widget.object_id.value = 5
    written = widget.accept()
    assert written > 0
    assert dice(target.data[z] == 5, reference[z] == 5) >= 0.9
    assert target.metadata["napari_sammed"]["engine"]["kind"] == "lite-medsam"
    assert np.all(target.data[z, :5, :5] == 7)
    assert len(ct_viewer.layers[BOXES].data) == 0  # prompts cleared after accepting

    after = target.data.copy()
    target.undo()
    assert np.array_equal(target.data, before)
    target.redo()
    assert np.array_equal(target.data, after)


def test_points_with_random_init_sam_med2d(ct_viewer, qtbot, small_checkpoint):
    widget = open_segment_dock(ct_viewer)
    widget.checkpoint.value = str(small_checkpoint)
    widget.device.value = "cpu"
    widget.load()
    assert widget.model_status.value.startswith("SAM-Med2D (256px)")
    image = ct_viewer.layers["CT"]
    widget.image.value = image
    go_to_slice(ct_viewer, image, 12)
    points = ct_viewer.layers[POINTS]
    points.add(np.array([[12, 40.0, 70.0]]))
    wait_for_worker(qtbot, widget)
    qtbot.waitUntil(lambda: widget.last_prediction is not None, timeout=60_000)
    pred = widget.last_prediction
    assert pred.mask.shape == image.data.shape[1:]
    # napari (row, col) became engine (x, y): compare with a direct engine call
    store = widget.volume_embeddings()
    direct = widget.engine.predict(store.get(12), store.slice_shape, points=np.array([[70.5, 40.5]]),
                                   point_labels=np.array([1]))
    assert np.array_equal(direct.mask, pred.mask)
    assert np.array_equal(ct_viewer.layers[PREVIEW].data[12] > 0, pred.mask)
    assert not ct_viewer.layers[PREVIEW].data[11].any()
    # a negative click is stored as such
    widget.negative.value = True
    points.add(np.array([[12, 10.0, 10.0]]))
    assert points.features["positive"].tolist() == [True, False]


def test_cancelled_volume_embedding_leaves_no_trusted_half(ct_viewer, qtbot, small_checkpoint):
    widget = open_segment_dock(ct_viewer)
    widget.checkpoint.value = str(small_checkpoint)
    widget.device.value = "cpu"
    widget.load()
    widget.image.value = ct_viewer.layers["CT"]
    widget.engine.batch_size = 2
    worker = widget.embed(whole_volume=True)
    worker.yielded.connect(lambda _n: widget.cancel())
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    store = widget.volume_embeddings()
    done = store.cache.done_mask()
    assert 0 < done.sum() < store.n_slices
    for i in np.flatnonzero(done):
        store.cache.read(int(i))  # checksum-verified
    assert store.cache.verify() == []


def test_demo_fits_the_ct_beside_the_dock(qtbot, tmp_path, monkeypatch):
    from napari_sammed._napari.demo import open_demo

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # a first start

    viewer, widget = open_demo()
    try:
        viewer.window._qt_window.resize(1600, 1000)
        qtbot.wait(50)
        viewer.reset_view()  # as open_demo does once the dock is laid out
        assert "CT" in viewer.layers and widget.window.value == "ct-soft-tissue"
        assert POINTS in viewer.layers and BOXES in viewer.layers
        assert widget.target.value is viewer.layers["CT annotations"]  # Accept has a place to write
        assert widget.engine.label == "LiteMedSAM"
        canvas = viewer.window._qt_viewer.canvas.native
        image = viewer.layers["CT"]
        extent = np.asarray(image.extent.world)[:, 1:]  # (min, max) of rows, cols in world units
        size_px = (extent[1] - extent[0]) * viewer.scene.camera.zoom
        assert np.all(size_px <= np.array([canvas.height(), canvas.width()]) + 1)  # the whole CT shows
        assert canvas.width() > 0.55 * viewer.window._qt_window.width()  # beside napari's own panels
    finally:
        viewer.close()


def test_rgb_2d_image_box(make_napari_viewer, qtbot):
    from skimage import io as skio

    from tests.conftest import DATA_DEMO

    image = skio.imread(DATA_DEMO / "images" / "amos_0006_90.png")
    mask = skio.imread(DATA_DEMO / "masks" / "amos_0006_90_liver_000.png") > 0
    assert image.ndim == 3 and image.shape[-1] == 3
    viewer = make_napari_viewer()
    layer = viewer.add_image(image, name="slice", rgb=True)
    widget = open_segment_dock(viewer)
    widget.image.value = layer
    assert widget.slice_axis() is None
    rows, cols = np.nonzero(mask)
    rect = np.array([[rows.min() - 0.5, cols.min() - 0.5], [rows.min() - 0.5, cols.max() + 0.5],
                     [rows.max() + 0.5, cols.max() + 0.5], [rows.max() + 0.5, cols.min() - 0.5]])
    viewer.layers[BOXES].add_rectangles(rect)
    wait_for_worker(qtbot, widget)
    qtbot.waitUntil(lambda: widget.last_prediction is not None, timeout=60_000)
    assert widget.last_prediction.mask.shape == image.shape[:2]
    assert widget.accept() > 0
    target = widget.target.value
    assert target.data.shape == image.shape[:2] and target.data.max() == 1
    assert dice(target.data == 1, mask) >= 0.85  # LiteMedSAM, a box on the liver: ~.95 measured


def test_3d_plus_channel_layout_gets_a_message(make_napari_viewer, monkeypatch):
    import napari_sammed._napari.segment_widget as module

    messages = []
    monkeypatch.setattr(module, "show_error", messages.append)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 2, 20, 20), np.uint16), name="4d")
    widget = open_segment_dock(viewer)
    widget.image.value = viewer.layers["4d"]
    widget._on_image_changed()
    assert messages and "split channels first" in messages[-1]


def test_a_preview_is_never_accepted_onto_another_slice(ct_viewer, qtbot):
    """Scroll to a prompted slice that still needs embedding and press Shift-A at once: the
    previous slice's preview must not be written onto it (it was, before previews knew their
    slice)."""
    widget = open_segment_dock(ct_viewer)
    image = ct_viewer.layers["CT"]
    widget.image.value = image
    reference = np.asarray(ct_viewer.layers["CT reference labels"].data)
    z = middle_slice(reference, 5)
    other = z + 6
    for k in (other, z):  # a box on each slice; the preview ends on slice z
        go_to_slice(ct_viewer, image, k)
        draw_box_around(widget, reference[k] == 5, k)
        wait_for_worker(qtbot, widget)
    widget.window.value = "ct-abdomen"  # new embeddings: nothing is embedded for them yet
    draw_box_around(widget, reference[z] == 5, z)
    wait_for_worker(qtbot, widget)
    qtbot.waitUntil(lambda: widget.last_prediction is not None, timeout=60_000)

    go_to_slice(ct_viewer, image, other)  # its box is there, its embedding is not
    assert widget.last_prediction is None  # slice z's preview is gone, not carried over
    assert widget.accept() == 0  # Shift-A now: nothing is written
    target = widget.target.value
    assert target is None or not np.asarray(target.data).any()

    wait_for_worker(qtbot, widget)
    qtbot.waitUntil(lambda: widget.last_prediction is not None, timeout=60_000)
    assert widget.accept() > 0  # now the preview is this slice's own: written here only
    written = np.asarray(widget.target.value.data) > 0
    assert np.flatnonzero(written.any(axis=(1, 2))).tolist() == [other]


def test_shift_a_on_a_slice_still_being_embedded_writes_nothing_and_says_why(ct_viewer, qtbot):
    """The user presses Shift-A where no preview of the slice shown exists yet: on a slice whose new
    prompt waits for its embedding (an older preview of that slice is stale), on a slice without a
    prompt, and on a boxed slice reached while another slice is being embedded. Nothing is written,
    and the dock's status line says why. That last slice's own preview then shows by itself (it
    used to wait for a touch of its prompt), and Shift-A writes that one, on that slice only."""
    widget = open_segment_dock(ct_viewer)
    image = ct_viewer.layers["CT"]
    widget.image.value = image
    reference = np.asarray(ct_viewer.layers["CT reference labels"].data)
    z = middle_slice(reference, 5)
    first, second = z + 3, z + 6
    go_to_slice(ct_viewer, image, z)
    for k in (first, second, z):  # a box on each; slice z is embedded and previewed
        draw_box_around(widget, reference[k] == 5, k)
    wait_for_worker(qtbot, widget)
    qtbot.waitUntil(lambda: widget.last_prediction is not None, timeout=60_000)

    widget.window.value = "ct-abdomen"  # new embeddings: no slice has one yet
    draw_box_around(widget, reference[z] == 5, z)  # a new prompt here: the preview shown is stale
    press_shift_a(qtbot, ct_viewer)
    assert widget.target.value is None
    assert widget.preview_note.value == f"slice {z} is still being embedded; Accept once its preview shows"
    qtbot.waitUntil(lambda: widget.last_prediction is not None, timeout=20_000)
    seen = widget.last_prediction.mask.copy()

    go_to_slice(ct_viewer, image, z - 3)  # no box here: Shift-A names the preview's slice
    press_shift_a(qtbot, ct_viewer)
    assert widget.target.value is None
    assert widget.preview_note.value == f"the preview is of slice {z}; go back to it or draw here"

    go_to_slice(ct_viewer, image, first)  # its embedding starts ...
    go_to_slice(ct_viewer, image, second)  # ... and this slice waits for it
    press_shift_a(qtbot, ct_viewer)
    assert widget.target.value is None  # nothing written, not slice z's mask here
    assert widget.preview_note.value == f"slice {second} is still being embedded; Accept once its preview shows"

    qtbot.waitUntil(lambda: widget.last_prediction is not None, timeout=20_000)
    assert widget.preview_note.value.startswith(f"slice {second} · object 1 · predicted IoU")
    own = widget.last_prediction.mask.copy()
    assert not np.array_equal(own, seen)
    press_shift_a(qtbot, ct_viewer)
    written = np.asarray(widget.target.value.data)
    assert np.flatnonzero(written.any(axis=(1, 2))).tolist() == [second]  # there, and only there
    assert np.array_equal(written[second] == 1, own)
    assert widget.preview_note.value == f"object 1 written on slice {second} (Ctrl+Z undoes it)"
