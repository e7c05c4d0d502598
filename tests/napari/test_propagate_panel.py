"""Headless GUI tests (Xvfb): propagation from the segment dock, cancel, undo as one step, QC plot."""

import time

import numpy as np
import pytest
from matplotlib.backend_bases import MouseEvent

from napari_sammed._napari.interactive import confirmed_slices
from napari_sammed._napari.layers import POINTS
from napari_sammed._napari.propagate_panel import ALL
from tests.conftest import dice, middle_slice
from tests.napari.conftest import draw_box_around, go_to_slice, open_segment_dock, wait_for_worker

pytestmark = pytest.mark.gui
LIVER, SPLEEN = 5, 1


def dock_with_seed(viewer, organs=(LIVER,)):
    """The dock on the CT with an annotations layer holding each organ's reference middle slice."""
    widget = open_segment_dock(viewer)
    image = viewer.layers["CT"]
    widget.image.value = image
    widget.window.value = "ct-abdomen"
    reference = np.asarray(viewer.layers["CT reference labels"].data)
    target = viewer.add_labels(np.zeros(image.data.shape, np.int32), name="annotations", scale=image.scale)
    seeds = {}
    for organ in organs:
        z = middle_slice(reference, organ)
        target.data[z][reference[z] == organ] = organ
        seeds[organ] = z
    widget.target.reset_choices()
    widget.target.value = target
    widget.object_id.value = organs[0]
    return widget, target, reference, seeds


def test_propagate_writes_one_undo_step_and_keeps_other_objects(ct_viewer, qtbot):
    widget, target, reference, seeds = dock_with_seed(ct_viewer)
    z = seeds[LIVER]
    target.data[z + 4, 40:60, 20:40] = 9  # another object, painted by hand, inside the liver
    protected = target.data == 9
    before = target.data.copy()
    worker = widget.propagation.propagate()
    assert worker is not None
    wait_for_worker(qtbot, widget)
    after = target.data.copy()
    assert dice(after == LIVER, reference == LIVER) >= 0.80
    assert np.all(after[protected] == 9)
    assert "voxels written" in widget.propagation.status.value
    assert widget.propagation.last_result.trace  # the QC trace is kept for the plot/export
    target.undo()  # one Ctrl+Z removes the whole propagation ...
    np.testing.assert_array_equal(target.data, before)
    target.redo()  # ... and one redo brings it back
    np.testing.assert_array_equal(target.data, after)


def test_cancel_midway_commits_a_consistent_prefix_as_one_step(ct_viewer, qtbot):
    widget, target, reference, seeds = dock_with_seed(ct_viewer)
    z = seeds[LIVER]
    engine = widget.engine
    original = engine.predict_batch

    def slow(*args, **kwargs):  # make the run long enough to cancel by hand
        time.sleep(0.1)
        return original(*args, **kwargs)

    engine.predict_batch = slow
    before = target.data.copy()
    steps = []
    worker = widget.propagation.propagate()
    worker.yielded.connect(lambda step: steps.append(step.index) if len(steps) < 4 else None)
    worker.yielded.connect(lambda _s: widget.cancel() if len(steps) >= 4 else None)
    wait_for_worker(qtbot, widget)
    written_slices = sorted(int(k) for k in np.flatnonzero((target.data == LIVER).any(axis=(1, 2))))
    assert z in written_slices and 3 <= len(written_slices) - 1 < target.data.shape[0] - 5
    # what was written is a contiguous run around the seed: no holes, nothing half-done
    assert written_slices == list(range(written_slices[0], written_slices[-1] + 1))
    target.undo()
    np.testing.assert_array_equal(target.data, before)
    assert widget.worker is None and not widget.cancel_button.enabled


def test_stop_marker_and_all_objects(ct_viewer, qtbot):
    widget, target, reference, seeds = dock_with_seed(ct_viewer, organs=(LIVER, SPLEEN))
    z = seeds[LIVER]
    rows, cols = np.nonzero(reference[z + 3] == LIVER)
    widget.negative.value = True
    points = ct_viewer.layers[POINTS]
    points.add([[z + 3, rows.mean(), cols.mean()]])
    assert not points.features["positive"].to_numpy()[-1]
    widget.propagation.scope.value = ALL
    widget.propagation.propagate()
    wait_for_worker(qtbot, widget)
    liver = np.flatnonzero((target.data == LIVER).any(axis=(1, 2)))
    assert liver.max() == z + 2  # stopped by the marker
    spleen = target.data == SPLEEN
    assert spleen.any(axis=(1, 2)).sum() > 10  # the other object walked on
    assert dice(spleen, reference == SPLEEN) >= 0.80


def test_clicking_the_qc_plot_jumps_to_that_slice(ct_viewer, qtbot):
    widget, target, reference, seeds = dock_with_seed(ct_viewer)
    assert widget.propagation.plot.canvas.isHidden()  # no trace yet: no empty plot taking room
    widget.propagation.propagate()
    wait_for_worker(qtbot, widget)
    plot = widget.propagation.plot
    assert plot.slices and plot.axes.lines
    assert not plot.canvas.isHidden()  # shown once there is a trace (hidden before)
    qtbot.wait(100)  # let Qt lay the newly shown canvas out, as it is before a user can click
    plot.canvas.draw()
    go_to_slice(ct_viewer, ct_viewer.layers["CT"], 0)
    wanted = 7
    x, y = plot.axes.transData.transform((wanted + 0.2, 0.5))
    MouseEvent("button_press_event", plot.canvas, x, y, button=1)._process()
    assert widget.current_index() == wanted


def test_nothing_to_propagate_says_why(ct_viewer, qtbot, monkeypatch):
    import napari_sammed._napari.propagate_panel as panel

    messages = []
    monkeypatch.setattr(panel, "show_info", messages.append)
    widget = open_segment_dock(ct_viewer)
    widget.image.value = ct_viewer.layers["CT"]
    assert widget.propagation.propagate() is None  # no labels layer, no preview
    assert widget.worker is None
    assert messages == ["napari-sammed: segment an object first (Accept it, or keep its preview)"]


def test_a_preview_seeds_propagation_on_its_own_slice_and_is_written_there(ct_viewer, qtbot):
    """No labels yet: the preview of slice z is the seed. The user scrolls away and clicks
    Propagate: the seed is slice z (not the slice shown) and its mask is written there too."""
    widget = open_segment_dock(ct_viewer)
    image = ct_viewer.layers["CT"]
    widget.image.value = image
    widget.object_id.value = LIVER
    reference = np.asarray(ct_viewer.layers["CT reference labels"].data)
    z = middle_slice(reference, LIVER)
    go_to_slice(ct_viewer, image, z)
    draw_box_around(widget, reference[z] == LIVER, z)
    wait_for_worker(qtbot, widget)
    qtbot.waitUntil(lambda: widget.last_prediction is not None, timeout=60_000)
    seed = widget.last_prediction.mask.copy()

    go_to_slice(ct_viewer, image, z + 10)  # no box here
    widget.propagation.button.native.click()
    assert widget.propagation.status.value == f"running from the preview on slice {z}…"
    wait_for_worker(qtbot, widget)
    target = widget.target.value
    assert target is not None
    assert np.array_equal(np.asarray(target.data)[z] == LIVER, seed)  # the seed, on its own slice
    assert confirmed_slices(target, "z", LIVER) == [z]
    assert dice(np.asarray(target.data) == LIVER, reference == LIVER) >= 0.85  # measured 0.902
