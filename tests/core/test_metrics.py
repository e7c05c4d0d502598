"""Challenge metrics on synthetic volumes whose answers are worked out by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import integrate, ndimage

from napari_sammed.core.volume.metrics import Click, auc, dice, next_click, nsd, protocol_nsd


def box(shape, z, y, x) -> np.ndarray:
    """Boolean volume of ``shape`` holding the box [z0, z1) x [y0, y1) x [x0, x1)."""
    volume = np.zeros(shape, dtype=bool)
    volume[z[0] : z[1], y[0] : y[1], x[0] : x[1]] = True
    return volume


def ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


# --- Dice ------------------------------------------------------------------------------------


def test_dice_of_identical_disjoint_and_half_overlapping_masks():
    a = box((12, 12, 24), (1, 11), (1, 11), (0, 10))
    assert dice(a, a) == 1.0
    assert dice(a, box((12, 12, 24), (1, 11), (1, 11), (12, 22))) == 0.0
    # Shifted by half its length: 500 shared voxels of 1000 + 1000.
    assert dice(a, box((12, 12, 24), (1, 11), (1, 11), (5, 15))) == 0.5


def test_dice_of_empty_masks():
    empty = np.zeros((4, 4, 4), dtype=bool)
    assert dice(empty, empty) == 1.0
    assert dice(empty, box((4, 4, 4), (0, 1), (0, 1), (0, 1))) == 0.0


def test_dice_takes_any_ndim_and_nonzero_labels_as_inside():
    a = np.zeros((4, 4), dtype=np.uint8)
    b = np.zeros((4, 4), dtype=np.uint8)
    a[0, :2] = 3
    b[0, 1:3] = 1
    assert dice(a, b) == 0.5  # 2 * 1 / (2 + 2)


def test_dice_rejects_different_shapes():
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((4, 4, 4), bool), np.zeros((4, 4, 5), bool))


# --- Next click ------------------------------------------------------------------------------


def test_click_is_positive_at_the_centre_of_the_largest_missed_part():
    shape = (32, 32, 32)
    reference = box(shape, (4, 20), (4, 20), (4, 20))
    prediction = reference.copy()
    prediction[4:11, 4:11, 4:11] = False  # a 7^3 corner missed: 343 voxels, the largest error
    prediction[26:28, 26:28, 26:28] = True  # a 2^3 false positive elsewhere: 8 voxels
    # The missed 7^3 box spans 4..10 on each axis; its only deepest voxel (4 voxels from outside
    # along every axis) is its centre.
    assert next_click(prediction, reference) == Click(7, 7, 7, True)


def test_click_ties_in_depth_go_to_the_first_voxel_in_c_order():
    shape = (32, 32, 32)
    reference = box(shape, (4, 20), (4, 20), (4, 20))
    prediction = reference.copy()
    prediction[:, :, 4:10] = False  # a 16 x 16 x 6 slab missed
    prediction[26:28, 26:28, 26:28] = True
    # Depth in the slab is the smallest distance to outside along an axis: along x (4..9) at most 3,
    # at x = 6 and 7; along z and y (4..19) at least 3 for 6..17. Of all the voxels of depth 3 the
    # first in C order is (6, 6, 6).
    assert next_click(prediction, reference) == Click(6, 6, 6, True)


def test_click_is_negative_when_the_largest_error_is_a_false_positive():
    shape = (32, 32, 32)
    reference = box(shape, (2, 5), (2, 5), (2, 5))  # missed entirely: 27 voxels
    prediction = box(shape, (20, 29), (20, 29), (20, 29))  # 729 false-positive voxels, centre 24
    assert next_click(prediction, reference) == Click(24, 24, 24, False)


def test_equal_sized_errors_go_to_the_one_whose_first_voxel_comes_first_in_c_order():
    shape = (32, 32, 32)
    early = box(shape, (2, 5), (20, 23), (20, 23))
    late = box(shape, (20, 23), (2, 5), (2, 5))
    # Early is a false positive, late a missed part, and then the other way round.
    assert next_click(early, late) == Click(3, 21, 21, False)
    assert next_click(late, early) == Click(3, 21, 21, True)


def test_errors_touching_only_at_a_corner_are_one_component():
    shape = (32, 32, 32)
    # Two missed 3^3 cubes meeting only at the corner (7, 7, 7)-(8, 8, 8): one 26-connected
    # component of 54 voxels, beating a 2 x 4 x 5 = 40-voxel false positive (which would win if
    # the cubes were two 27-voxel components, as with 6-connectivity).
    reference = box(shape, (5, 8), (5, 8), (5, 8)) | box(shape, (8, 11), (8, 11), (8, 11))
    prediction = box(shape, (20, 22), (20, 24), (20, 25))
    # Both cube centres have depth 2; (6, 6, 6) comes first in C order.
    assert next_click(prediction, reference) == Click(6, 6, 6, True)


def test_the_array_edge_counts_as_outside_the_error():
    reference = box((8, 8, 8), (0, 3), (0, 8), (0, 8))  # a missed slab filling z = 0..2
    # Depth 2 at z = 1 (z = -1 and z = 3 are outside) for y, x in 1..6: first in C order is (1, 1, 1).
    assert next_click(np.zeros_like(reference), reference) == Click(1, 1, 1, True)


def test_no_click_without_error():
    reference = box((8, 8, 8), (2, 5), (2, 5), (2, 5))
    assert next_click(reference, reference.copy()) is None
    assert next_click(np.zeros((8, 8, 8), bool), np.zeros((8, 8, 8), bool)) is None


def test_click_is_frozen_and_next_click_wants_3d():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Click(1, 2, 3, True).z = 0
    with pytest.raises(ValueError):
        next_click(np.ones((4, 4), bool), np.zeros((4, 4), bool))


# --- AUC -------------------------------------------------------------------------------------


def test_auc_of_a_perfect_predictor_over_five_clicks_is_four():
    assert auc([1.0, 1.0, 1.0, 1.0, 1.0]) == 4.0


def test_auc_of_a_linear_ramp():
    # Trapezoids 0.125 + 0.375 + 0.625 + 0.875, all exact in binary.
    assert auc([0.0, 0.25, 0.5, 0.75, 1.0]) == 2.0
    assert auc(np.array([0.2, 0.4, 0.6, 0.8, 1.0])) == pytest.approx(2.4, abs=1e-12)


def test_auc_matches_the_challenge_cumulative_trapezoid():
    values = np.random.default_rng(3).random(5)
    assert auc(values) == pytest.approx(integrate.cumulative_trapezoid(values, dx=1)[-1], abs=1e-12)


def test_auc_of_fewer_than_two_values_is_zero():
    assert auc([]) == 0.0
    assert auc([0.9]) == 0.0
    with pytest.raises(ValueError):
        auc(np.ones((2, 3)))


# --- NSD -------------------------------------------------------------------------------------

SHAPE = (16, 16, 16)
CUBE = box(SHAPE, (3, 13), (3, 13), (3, 13))  # 10^3 voxels; 488 border voxels (1000 - 8^3)


def test_nsd_of_identical_and_empty_masks():
    empty = np.zeros(SHAPE, dtype=bool)
    assert nsd(CUBE, CUBE, (1, 1, 1)) == 1.0
    assert nsd(empty, empty, (1, 1, 1)) == 1.0
    assert nsd(CUBE, empty, (1, 1, 1)) == 0.0
    assert nsd(empty, CUBE, (1, 1, 1)) == 0.0


def test_nsd_of_a_one_voxel_shift():
    shifted_x = np.roll(CUBE, 1, axis=2)
    shifted_y = np.roll(CUBE, 1, axis=1)
    shifted_z = np.roll(CUBE, 1, axis=0)
    # 1 mm shift, 2 mm tolerance: every border voxel is within 1 mm of the other border.
    assert nsd(CUBE, shifted_x, (1, 1, 1), 2.0) == 1.0
    # x voxels of 3 mm: a border voxel is within 2 mm of the other border only through a border
    # voxel in the same x slice (another slice is >= 3 mm away) at an in-plane distance <= 2.
    # In cube coordinates 0..9, A has x = 0..9 and B = A shifted has x = 1..10. A's border per
    # x slice: full 10 x 10 face at x = 0 and 9, the 36-voxel ring in between; B's the same on 1..10.
    #   A at x = 0: B has no voxel in that slice                           -> 0 of 100
    #   A at x = 1..8 (rings): B's face (x = 1) or ring (2..8) holds them   -> 8 * 36 = 288 of 288
    #   A at x = 9 (face): B's ring at x = 9 holds the 36 ring voxels; of the 64 inner ones those
    #     within 2 voxels of the ring count, all but the 4 x 4 centre      -> 36 + 48 = 84 of 100
    # So 372 of 488 for A and, by symmetry (B's x = 10 face against A's x = 1 ring), 372 of 488
    # for B: NSD = 744 / 976 = 93 / 122.
    expected = (372 + 372) / (488 + 488)
    assert expected == 93 / 122
    assert nsd(CUBE, shifted_x, (1, 1, 3), 2.0) == expected
    # Spacing goes with the axis: the same shift along z with 3 mm z voxels gives the same value,
    # along y (1 mm voxels) everything is within the tolerance again.
    assert nsd(CUBE, shifted_z, (3, 1, 1), 2.0) == expected
    assert nsd(CUBE, shifted_y, (1, 1, 3), 2.0) == 1.0


def test_nsd_counts_distances_equal_to_the_tolerance():
    shifted = np.roll(CUBE, 2, axis=2)  # A on x = 0..9, B on x = 2..11 (cube coordinates)
    # tolerance 2: A's x = 0 face is exactly 2 mm from B's x = 2 face, so it counts -> NSD 1.
    assert nsd(CUBE, shifted, (1, 1, 1), 2.0) == 1.0
    # tolerance 1.5, per slice of A:
    #   x = 0 face: B's nearest border (its x = 2 face) is 2 mm away           -> 0 of 100
    #   x = 1 ring: 1 mm from B's x = 2 face; x = 2..8 rings lie on B's face or rings -> 288 of 288
    #   x = 9 face: its 36 ring voxels lie on B's ring; of the 64 inner ones the 28 next to the ring
    #     are 1 mm from it, the other 36 >= 2 mm from all of B's border      -> 36 + 28 = 64 of 100
    # 352 of 488 for each mask by symmetry: NSD = 704 / 976 = 44 / 61.
    assert nsd(CUBE, shifted, (1, 1, 1), 1.5) == 44 / 61


def test_nsd_rejects_bad_input():
    with pytest.raises(ValueError):
        nsd(np.ones((4, 4), bool), np.ones((4, 4), bool), (1, 1, 1))
    with pytest.raises(ValueError):
        nsd(CUBE, CUBE[:-1], (1, 1, 1))
    for spacing in [(1, 1), (1, 0, 1), (1, -2, 1), (1, np.nan, 1)]:
        with pytest.raises(ValueError):
            nsd(CUBE, CUBE, spacing)
    for tolerance in [-1.0, np.nan, np.inf]:
        with pytest.raises(ValueError):
            nsd(CUBE, CUBE, (1, 1, 1), tolerance)


def test_protocol_nsd_is_zero_when_dice_is_at_most_a_fifth():
    shape = (14, 14, 14)
    # Two parallel one-voxel-thick plates 1 mm apart: disjoint (Dice 0), yet every border voxel is
    # 1 mm from the other plate (NSD 1).
    plate = box(shape, (2, 12), (2, 12), (5, 6))
    neighbour = box(shape, (2, 12), (2, 12), (6, 7))
    assert dice(plate, neighbour) == 0.0
    assert nsd(plate, neighbour, (1, 1, 1)) == 1.0
    assert protocol_nsd(plate, neighbour, (1, 1, 1)) == 0.0
    # Two 5-voxel rods sharing one voxel: Dice exactly 2 * 1 / 10 = 0.2, which still scores 0.
    rod = box(shape, (7, 8), (7, 8), (0, 5))
    overlapping = box(shape, (7, 8), (7, 8), (4, 9))
    assert dice(rod, overlapping) == 0.2
    assert nsd(rod, overlapping, (1, 1, 1)) > 0.0
    assert protocol_nsd(rod, overlapping, (1, 1, 1)) == 0.0


def test_protocol_nsd_is_nsd_above_a_fifth():
    shifted = np.roll(CUBE, 1, axis=2)
    assert dice(CUBE, shifted) == 0.9
    assert protocol_nsd(CUBE, shifted, (1, 1, 3)) == 93 / 122
    empty = np.zeros(SHAPE, dtype=bool)
    assert protocol_nsd(empty, empty, (1, 1, 1)) == 1.0
    with pytest.raises(ValueError):
        protocol_nsd(empty, CUBE, (1, 1))  # bad spacing fails even though Dice is 0


def brute_force_nsd(prediction, reference, spacing, tolerance_mm):
    """NSD on the whole volume, borders found by comparing each voxel with its six neighbours."""

    def border(mask):
        padded = np.pad(mask, 1)
        inner = np.ones_like(mask)
        for axis in range(3):
            for step in (-1, 1):
                inner &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
        return mask & ~inner

    pred_border, ref_border = border(prediction), border(reference)
    to_ref = ndimage.distance_transform_edt(~ref_border, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_border, sampling=spacing)
    close = np.count_nonzero(to_ref[pred_border] <= tolerance_mm) + np.count_nonzero(
        to_pred[ref_border] <= tolerance_mm
    )
    return close / (np.count_nonzero(pred_border) + np.count_nonzero(ref_border))


@pytest.mark.parametrize(
    ("seed", "spacing", "tolerance_mm", "at_edge"),
    [
        (0, (1.0, 1.0, 1.0), 2.0, False),
        (1, (2.5, 0.7, 0.7), 2.0, False),
        (2, (0.8, 1.3, 3.0), 3.5, False),
        (3, (1.0, 1.0, 1.0), 1.0, True),
        (4, (3.0, 0.9, 1.1), 2.0, True),
    ],
)
def test_nsd_in_the_objects_box_equals_the_full_volume(seed, spacing, tolerance_mm, at_edge):
    rng = np.random.default_rng(seed)
    shape = (40, 40, 40)
    prediction = np.zeros(shape, dtype=bool)
    reference = np.zeros(shape, dtype=bool)
    for _ in range(3):
        centre = rng.integers(0, 6, 3) if at_edge else rng.integers(12, 28, 3)
        prediction |= ball(shape, centre, rng.uniform(2, 6))
        reference |= ball(shape, centre + rng.integers(-2, 3, 3), rng.uniform(2, 6))
    expected = brute_force_nsd(prediction, reference, spacing, tolerance_mm)
    assert 0.0 < expected < 1.0  # a case where the tolerance actually decides
    assert nsd(prediction, reference, spacing, tolerance_mm) == expected
