"""Headless GUI test (Xvfb): after a propagation, a box accepted on a wrong slice updates the
object in 3D - neighbours change, far slices do not, one Ctrl+Z restores the 3D mask."""

import numpy as np
import pytest

from napari_sammed._napari.interactive import confirmed_slices
from napari_sammed._napari.segment_widget import BUNDLED
from tests.conftest import dice
from tests.napari.conftest import draw_box_around, go_to_slice, open_segment_dock, wait_for_worker

pytestmark = pytest.mark.gui
KIDNEY_RIGHT = 2  # slices 11-29 of the sample CT as shown; propagation from 20 misses its top, slice 11
SPLEEN = 1


def kidney_dock(viewer, organ=KIDNEY_RIGHT):
    """The dock opened from the Plugins menu with LiteMedSAM, an empty labels layer, ``organ``."""
    widget = open_segment_dock(viewer, BUNDLED)
    image = viewer.layers["CT"]
    widget.image.value = image
    widget.window.value = "ct-abdomen"
    truth = np.asarray(viewer.layers["CT reference labels"].data) == organ
    target = viewer.add_labels(np.zeros(image.data.shape, np.int32), name="annotations", scale=image.scale)
    widget.target.reset_choices()
    widget.target.value = target
    widget.object_id.value = organ
    return widget, image, truth, target


def box_and_accept(widget, qtbot, viewer, truth, z):
    go_to_slice(viewer, viewer.layers["CT"], z)
    widget.session.show_preview(None)
    draw_box_around(widget, truth[z], z)
    wait_for_worker(qtbot, widget)  # the slice may need embedding first
    qtbot.waitUntil(lambda: widget.last_prediction is not None, timeout=120_000)
    result = widget.accept()
    wait_for_worker(qtbot, widget)
    return result


def test_a_box_on_a_wrong_slice_updates_the_object_in_3d_and_one_undo_restores_it(ct_viewer, qtbot):
    widget, image, truth, target = kidney_dock(ct_viewer)

    assert box_and_accept(widget, qtbot, ct_viewer, truth, 20) > 0  # the first slice: just that slice
    assert np.flatnonzero(target.data.any(axis=(1, 2))).tolist() == [20]
    widget.propagation.propagate()
    wait_for_worker(qtbot, widget)
    propagated = target.data.copy()
    assert (propagated == KIDNEY_RIGHT).any(axis=(1, 2)).sum() > 10
    assert confirmed_slices(target, "z", KIDNEY_RIGHT) == [20]
    assert dice(propagated[11] == KIDNEY_RIGHT, truth[11]) < 0.6  # the propagation got slice 11 wrong

    box_and_accept(widget, qtbot, ct_viewer, truth, 11)  # accepted: the whole object follows
    updated = target.data.copy()
    assert dice(updated[11] == KIDNEY_RIGHT, truth[11]) > dice(propagated[11] == KIDNEY_RIGHT, truth[11]) + 0.2
    assert np.array_equal(updated[16:], propagated[16:])  # the slices nearer slice 20 did not change
    assert dice(updated == KIDNEY_RIGHT, truth) > dice(propagated == KIDNEY_RIGHT, truth)
    assert confirmed_slices(target, "z", KIDNEY_RIGHT) == [11, 20]
    assert "confirmed slices 11, 20" in widget.object_3d.value

    target.undo()  # one Ctrl+Z: the 3D mask before the update
    np.testing.assert_array_equal(target.data, propagated)
    target.redo()
    np.testing.assert_array_equal(target.data, updated)


def test_auto_update_off_keeps_the_one_slice_behaviour_and_a_z_range_bounds_the_object(ct_viewer, qtbot):
    widget, image, truth, target = kidney_dock(ct_viewer)

    go_to_slice(ct_viewer, image, 17)
    widget.mark_z(0)  # first slice = here
    go_to_slice(ct_viewer, image, 24)
    widget.mark_z(1)  # last slice = here
    assert widget.session.z_range(KIDNEY_RIGHT) == (17, 24) and "z-range 17–24" in widget.object_3d.value
    box_and_accept(widget, qtbot, ct_viewer, truth, 20)  # with a z-range, the first box is a 3D box
    present = np.flatnonzero((target.data == KIDNEY_RIGHT).any(axis=(1, 2)))
    assert present.min() == 17 and present.max() == 24

    widget.auto_3d.value = False
    target.data[22][target.data[22] == KIDNEY_RIGHT] = 0  # wiped (outside the undo history)
    before = target.data.copy()
    box_and_accept(widget, qtbot, ct_viewer, truth, 22)
    changed = np.flatnonzero((target.data != before).any(axis=(1, 2)))
    assert changed.tolist() == [22]  # one slice only, as before this feature
    assert dice(target.data[22] == KIDNEY_RIGHT, truth[22]) > 0.7  # the box on slice 22 alone
    assert confirmed_slices(target, "z", KIDNEY_RIGHT) == [20, 22]

    target.selected_label = KIDNEY_RIGHT  # painting by hand confirms the slice
    target.paint((18, 40, 60), KIDNEY_RIGHT)
    assert 18 in confirmed_slices(target, "z", KIDNEY_RIGHT)


def test_propagate_again_re_predicts_from_the_confirmed_slices(ct_viewer, qtbot):
    widget, image, truth, target = kidney_dock(ct_viewer, SPLEEN)  # slices 0-29; propagation misses 29
    widget.auto_3d.value = False  # the one-slice behaviour: corrections wait for Propagate
    box_and_accept(widget, qtbot, ct_viewer, truth, 14)
    widget.propagation.propagate()
    wait_for_worker(qtbot, widget)
    first = target.data.copy()
    assert (first[20:25] == SPLEEN).any(axis=(1, 2)).all()  # propagated, not confirmed
    assert not (first[29] == SPLEEN).any()
    box_and_accept(widget, qtbot, ct_viewer, truth, 29)  # a fix where the propagation fell short
    fixed = target.data.copy()
    assert confirmed_slices(target, "z", SPLEEN) == [14, 29]
    widget.propagation.propagate()  # from slices 14 and 29 only: their neighbours are re-predicted
    wait_for_worker(qtbot, widget)
    again = target.data.copy()
    assert np.array_equal(again[14], fixed[14]) and np.array_equal(again[29], fixed[29])
    assert not np.array_equal(again[26:29], fixed[26:29])  # before, labelled slices were never re-predicted
    assert dice(fixed == SPLEEN, truth) > dice(first == SPLEEN, truth)
    target.undo()  # one step
    np.testing.assert_array_equal(target.data, fixed)
