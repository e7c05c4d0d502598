"""VolumeAnnotator on the real CT with LiteMedSAM: corrections spread, stay local, undo exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

import napari_sammed as ns
from napari_sammed.core.io.orientation import to_source
from napari_sammed.core.io.windowing import resolve_window
from napari_sammed.core.volume.embeddings import VolumeEmbeddings
from tests.conftest import bbox_xyxy, dice

KIDNEY_RIGHT, KIDNEY_LEFT, LIVER, SPLEEN = 2, 3, 5, 1
STORED = ("R", "A", "S")  # the sample CT's own voxel order: the slice numbers below count in it


@pytest.fixture(scope="module")
def ct(ct_volume, ct_labels):
    engine = ns.SliceEngine(ns.load_model(device="cpu"))
    volume = to_source(ct_volume, STORED)
    store = VolumeEmbeddings(engine, volume, resolve_window(volume, "ct-abdomen"), "z")
    store.compute()
    return store, to_source(ct_labels, STORED)


def annotator(store, **kwargs):
    return ns.VolumeAnnotator(store, **kwargs)


def test_a_box_on_a_wrong_slice_spreads_to_its_neighbours_and_stops_at_confirmed_ones(ct):
    store, labels = ct
    truth = labels == KIDNEY_RIGHT  # slices 0-18; propagation from 9 shrinks on 0-6 (slice Dice .35-.68)
    ann = annotator(store)
    before = ann.box(KIDNEY_RIGHT, 9, bbox_xyxy(truth[9]), z_range=(0, 18))
    assert dice(before[3], truth[3]) < 0.5
    after = ann.box(KIDNEY_RIGHT, 3, bbox_xyxy(truth[3]))
    assert dice(after[3], truth[3]) > dice(before[3], truth[3]) + 0.2
    assert not np.array_equal(after[4], before[4]) and not np.array_equal(after[2], before[2])
    assert dice(after[4], truth[4]) > dice(before[4], truth[4])
    # slices nearer the confirmed slice 9 stay its own, bit for bit, and so does everything past it
    assert np.array_equal(after[7:], before[7:])
    assert ann.confirmed(KIDNEY_RIGHT) == [3, 9]
    assert set(ann.changed) <= set(range(0, 7))
    assert dice(after, truth) > dice(before, truth)


def test_a_local_fix_leaves_far_slices_untouched(ct):
    store, labels = ct
    truth = labels == SPLEEN
    ann = annotator(store)
    before = ann.box(SPLEEN, 15, bbox_xyxy(truth[15]), z_range=(0, 29))
    edited = before[8].copy()
    edge = edited & ~ndi.binary_erosion(edited)
    edited[tuple(np.argwhere(edge)[:2].T)] = False  # two outline pixels fewer: the same box
    after = ann.paint(SPLEEN, 8, edited)
    assert np.array_equal(after[8], edited)
    assert ann.changed and set(ann.changed) <= {7, 8, 9}  # the neighbours agree at once
    far = [k for k in range(30) if k not in (7, 8, 9)]
    assert np.array_equal(after[far], before[far])


def test_a_negative_click_past_the_organ_end_removes_the_overshoot(ct):
    store, labels = ct
    truth = labels == KIDNEY_LEFT  # slices 0-22
    overshoot = truth.copy()
    overshoot[23:26] = truth[20]  # a propagation that ran 3 slices too far
    ann = annotator(store)
    ann.load(KIDNEY_LEFT, overshoot, confirmed=[11])
    depth = ndi.distance_transform_edt(truth[20])
    row, col = np.unravel_index(np.argmax(depth), depth.shape)
    after = ann.click(KIDNEY_LEFT, 23, col + 0.5, row + 0.5, positive=False)
    assert not after[23:].any()
    assert np.array_equal(after[:23], overshoot[:23])
    assert ann.confirmed(KIDNEY_LEFT) == [11, 23]
    assert dice(after, truth) > dice(overshoot, truth)


def test_undo_restores_the_exact_previous_3d_mask(ct):
    store, labels = ct
    truth = labels == KIDNEY_RIGHT
    ann = annotator(store)
    first = ann.box(KIDNEY_RIGHT, 9, bbox_xyxy(truth[9]), z_range=(0, 18))
    second = ann.box(KIDNEY_RIGHT, 3, bbox_xyxy(truth[3]))
    rows, cols = np.nonzero(truth[5] & ~second[5])
    third = ann.click(KIDNEY_RIGHT, 5, cols[len(cols) // 2] + 0.5, rows[len(rows) // 2] + 0.5)
    assert not np.array_equal(third, second)
    assert ann.undo() == KIDNEY_RIGHT
    assert np.array_equal(ann.mask(KIDNEY_RIGHT), second) and ann.confirmed(KIDNEY_RIGHT) == [3, 9]
    assert ann.undo() == KIDNEY_RIGHT
    assert np.array_equal(ann.mask(KIDNEY_RIGHT), first) and ann.confirmed(KIDNEY_RIGHT) == [9]
    assert ann.undo() == KIDNEY_RIGHT
    assert not ann.mask(KIDNEY_RIGHT).any()
    assert ann.undo() is None


def test_two_objects_never_touch_each_others_voxels(ct):
    store, labels = ct
    ann = annotator(store)
    liver = ann.box(LIVER, 15, bbox_xyxy(labels[15] == LIVER), z_range=(0, 29))
    kidney = ann.box(KIDNEY_RIGHT, 9, bbox_xyxy(labels[9] == KIDNEY_RIGHT), z_range=(0, 18))
    assert np.array_equal(ann.mask(LIVER), liver)
    assert not (ann.mask(LIVER) & kidney).any()
    truth = labels == KIDNEY_RIGHT
    rows, cols = np.nonzero(truth[4] & ~kidney[4])
    kidney = ann.click(KIDNEY_RIGHT, 4, cols[len(cols) // 2] + 0.5, rows[len(rows) // 2] + 0.5)
    assert np.array_equal(ann.mask(LIVER), liver)
    assert not (liver & kidney).any()


def test_from_scratch_mode_re_propagates_from_the_confirmed_slices(ct):
    store, labels = ct
    truth = labels == KIDNEY_RIGHT
    ann = annotator(store, incremental=False)
    first = ann.box(KIDNEY_RIGHT, 9, bbox_xyxy(truth[9]), z_range=(0, 18))
    assert first[0:19].any(axis=(1, 2)).sum() > 10 and not first[19:].any()
    second = ann.box(KIDNEY_RIGHT, 3, bbox_xyxy(truth[3]))
    assert ann.confirmed(KIDNEY_RIGHT) == [3, 9]
    assert dice(second, truth) > dice(first, truth) - 0.05  # a whole new propagation, not a local edit
    assert not np.array_equal(second, first)


def test_bad_interactions_are_refused_and_leave_no_trace(ct):
    store, labels = ct
    ann = annotator(store)
    with pytest.raises(ValueError, match="outside the volume"):
        ann.click(1, 30, 10, 10)
    with pytest.raises(ValueError, match="outside the z-range"):
        ann.box(1, 5, [10, 10, 40, 40], z_range=(10, 20))
    with pytest.raises(ValueError, match="does not fit"):
        ann.paint(1, 5, np.ones((3, 3), bool))
    assert ann.undo() is None and not ann.mask(1).any()


class HugeClickEngine:
    """A stand-in engine: boxes give the box's interior, clicks find a structure filling the slice."""

    batch_size = 1

    @staticmethod
    def propagation_recipe(slice_shape):
        return {"box_margin": 0.0, "min_margin": 0.0, "use_mask_prompt": False}

    def predict_batch(self, embedding, image_size, prompts):
        from napari_sammed.core.engine.slice_engine import Prediction

        out = []
        for prompt in prompts:
            mask = np.zeros(image_size, bool)
            if prompt.points is not None:
                mask[:] = True
            elif prompt.box is not None:
                x0, y0, x1, y1 = (int(round(v)) for v in prompt.box)
                mask[y0:y1, x0:x1] = True
            out.append(Prediction(mask, mask.astype(np.float32), 0.9, np.zeros((1, 4, 4), np.float32)))
        return out

    def mask_logits(self, mask):
        return np.zeros((1, 4, 4), np.float32)

    def mask_prompt(self, low):
        return low


class StubEmbeddings:
    def __init__(self, engine, shape=(6, 32, 32)):
        self.engine, self.n_slices, self.slice_shape, self.axis = engine, shape[0], shape[1:], 0

    def get(self, index):
        return np.zeros(1)

    def is_embedded(self, index):
        return True


def test_a_click_that_finds_a_much_larger_structure_is_obeyed_on_its_slice_only():
    ann = ns.VolumeAnnotator(StubEmbeddings(HugeClickEngine()))
    start = np.zeros((6, 32, 32), bool)
    start[1:5, 10:16, 10:16] = True
    ann.load(1, start, confirmed=[2])
    after = ann.click(1, 3, 17.5, 12.5, positive=True)  # just outside the square
    assert after[3, 12, 17] and after[3].sum() < 2 * start[3].sum()  # a small disc, not the whole slice
    assert np.array_equal(after[3] & start[3], start[3])
    assert ann.confirmed(1) == [2, 3]


def test_a_clicks_correction_spreads_only_through_slices_with_the_same_error_at_its_point(ct):
    from napari_sammed.core.volume.metrics import next_click

    store, labels = ct
    truth = labels == KIDNEY_LEFT
    ann = annotator(store)
    before = ann.box(KIDNEY_LEFT, 11, bbox_xyxy(truth[11]), z_range=(0, 22))
    spread = 0
    for _ in range(3):  # the protocol's clicks
        click = next_click(before, truth)
        after = ann.click(KIDNEY_LEFT, click.z, click.x + 0.5, click.y + 0.5, click.positive)
        wrong_there = before[:, click.y, click.x] != click.positive
        for k in ann.changed:
            if k != click.z:
                assert wrong_there[k]  # the old mask shared the clicked error on every slice it rewrote
        for step in (1, -1):  # the first slice already right at the point, and all beyond, keep their masks
            k = click.z + step
            while 0 <= k < 30 and wrong_there[k]:
                k += step
            if 0 <= k < 30:
                stop = slice(k, None) if step == 1 else slice(0, k + 1)
                assert np.array_equal(after[stop], before[stop])
        spread += len(set(ann.changed) - {click.z})
        before = after
    assert spread > 0  # some click did reach other slices


@pytest.mark.parametrize("call, message", [
    (lambda a: a.box(1, 2, (100, 100, 200, 200)), "outside the slice"),
    (lambda a: a.box(1, 2, (0, 0, np.nan, 10)), "four finite numbers"),
    (lambda a: a.box(1, 2, (0, 0, 10)), "four finite numbers"),
    (lambda a: a.box(1, 2, (4, 4, 20, 20), z_range=(4,)), "first slice, last slice"),
    (lambda a: a.box(0, 2, (4, 4, 20, 20)), "start at 1"),
    (lambda a: a.box(1.5, 2, (4, 4, 20, 20)), "whole number"),
    (lambda a: a.click(1, 2, np.nan, 5), "outside the slice"),
    (lambda a: a.click(1, 2, -5, 5), "outside the slice"),
    (lambda a: a.click(-3, 2, 5, 5), "start at 1"),
    (lambda a: a.click(1, 2.7, 5, 5), "whole number"),
    (lambda a: a.paint(1, 2, np.full((32, 32), np.nan)), "boolean"),
    (lambda a: a.load(1, np.zeros((6, 32, 32), bool), confirmed=[99]), "outside the volume"),
])
def test_bad_input_is_one_clear_error_and_changes_nothing(call, message):
    ann = ns.VolumeAnnotator(StubEmbeddings(HugeClickEngine()))
    before = ann.box(1, 2, (10, 10, 16, 16), z_range=(1, 4))
    with pytest.raises(ValueError, match=message):
        call(ann)
    assert np.array_equal(ann.mask(1), before) and ann.confirmed(1) == [2]
    assert ann.undo() == 1 and ann.undo() is None  # the failed call left no step behind


def test_loaded_objects_never_share_voxels_with_others():
    ann = ns.VolumeAnnotator(StubEmbeddings(HugeClickEngine()))
    first = ann.box(1, 2, (10, 10, 16, 16), z_range=(1, 4))
    ann.load(2, first, confirmed=[2])  # the same voxels, claimed by another object
    assert not (ann.mask(2) & ann.mask(1)).any() and np.array_equal(ann.mask(1), first)
