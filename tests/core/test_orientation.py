"""Every NIfTI and DICOM volume is shown in the radiological convention; files keep their own order.

Displayed (Z, Y, X) runs head -> feet, anterior -> posterior, patient's right -> left, so an axial
slice has anterior at the top and the patient's left on the screen's right.
"""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_sammed._reader import get_reader
from napari_sammed.core.io.orientation import display_affine, to_display, to_source
from napari_sammed.core.io.read import read_volume
from napari_sammed.core.io.write import write_volume

from .test_io import write_dicom_series

DATA = Path(__file__).resolve().parents[2] / "src" / "napari_sammed" / "_data"  # the samples
SPLEEN, LIVER, KIDNEYS = 1, 5, (2, 3)
BACK_MUSCLES = {"example_seg": (86, 87), "example_seg_mr": (46, 47)}  # autochthon left/right


def centroid(labels: np.ndarray, values) -> np.ndarray:
    return np.array(np.nonzero(np.isin(labels, values))).mean(axis=1)  # (z, y, x)


@pytest.mark.parametrize("image, labels", [("example_ct_sm", "example_seg"), ("example_mr_sm", "example_seg_mr")])
def test_samples_show_anatomy_the_radiological_way(image, labels):
    """Stored RAS (CT) and LPS (MR), both samples show the same anatomy at the same places."""
    volume, seg = read_volume(DATA / f"{image}.nii.gz"), read_volume(DATA / f"{labels}.nii.gz")
    assert volume.data.shape == seg.data.shape
    liver, spleen = centroid(seg.data, LIVER), centroid(seg.data, SPLEEN)
    kidneys, back = centroid(seg.data, KIDNEYS), centroid(seg.data, BACK_MUSCLES[labels])
    assert liver[2] < volume.data.shape[2] / 2 < spleen[2]  # patient's right on the screen's left
    assert back[1] > liver[1] and back[1] > volume.data.shape[1] / 2  # posterior at the bottom
    assert liver[0] < kidneys[0]  # head first: the liver lies above the kidneys


@pytest.mark.parametrize("image", ["example_ct_sm", "example_mr_sm"])
def test_display_axes_point_where_the_affine_says(image):
    volume = read_volume(DATA / f"{image}.nii.gz")
    affine = display_affine(volume.affine, volume.metadata["source_axcodes"], volume.data.shape)
    column, row, slice_ = (affine[:3, axis] for axis in range(3))  # of data.T: x, y, z
    assert column[0] < 0 and abs(column[0]) == abs(column).max()  # towards the patient's left (-R)
    assert row[1] < 0 and abs(row[1]) == abs(row).max()  # towards posterior (-A)
    assert slice_[2] < 0 and abs(slice_[2]) == abs(slice_).max()  # towards inferior (-S)
    # The same world point, whichever order: the displayed voxel maps to the source voxel.
    source = np.asarray(nib.load(str(DATA / f"{image}.nii.gz")).dataobj)
    z, y, x = 3, 17, 29
    i, j, k = np.round(np.linalg.solve(volume.affine, affine @ [x, y, z, 1])[:3]).astype(int)
    assert volume.data[z, y, x] == source[i, j, k]


def test_labels_written_back_in_the_source_voxel_order(tmp_path):
    """What napari shows is turned back: the file has the source's affine, header and voxels."""
    seg = read_volume(DATA / "example_seg.nii.gz")
    out = write_volume(tmp_path / "labels.nii.gz", seg.data, seg.layer_metadata())
    written, source = nib.load(str(out)), nib.load(str(DATA / "example_seg.nii.gz"))
    assert np.array_equal(written.affine, source.affine)
    assert np.array_equal(np.asarray(written.dataobj), np.asarray(source.dataobj))
    assert nib.aff2axcodes(written.affine) == ("R", "A", "S")


def test_napari_reader_shows_the_display_order():
    path = str(DATA / "example_ct_sm.nii.gz")
    [(data, kwargs, kind)] = get_reader(path)(path)
    assert kind == "image" and np.array_equal(data, read_volume(DATA / "example_ct_sm.nii.gz").data)
    assert kwargs["metadata"]["source_axcodes"] == ["R", "A", "S"]


@pytest.mark.parametrize("orientation, expected", [
    ([1, 0, 0, 0, 1, 0], lambda v: v[::-1]),  # standard axial LPS, stored feet first
    ([-1, 0, 0, 0, -1, 0], lambda v: v[::-1, ::-1, ::-1]),  # rotated 180 degrees in plane
    ([0, 1, 0, 1, 0, 0], lambda v: v.transpose(0, 2, 1)),  # rows and columns swapped, stored head first
])
def test_dicom_series_in_any_orientation_is_shown_radiologically(tmp_path, orientation, expected):
    volume = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    write_dicom_series(tmp_path / "series", volume, spacing=(2.0, 1.0, 1.0), orientation=orientation)
    read = read_volume(tmp_path / "series")
    assert np.array_equal(read.data, expected(volume))
    # Geometry check against the affine itself: displayed axes run left, posterior, inferior (LPS: +x, +y, -z).
    lps = display_affine(read.affine, read.metadata["source_axcodes"], read.data.shape)
    assert lps[0, 0] > 0 and lps[1, 1] > 0 and lps[2, 2] < 0
    out = write_volume(tmp_path / "series.nii.gz", read.data, read.layer_metadata(), labels=False)
    assert np.array_equal(np.asarray(nib.load(str(out)).dataobj), volume.T)  # source order, as stored


@pytest.mark.parametrize("codes", [("R", "A", "S"), ("L", "P", "S"), ("A", "S", "R"), ("P", "I", "L")])
def test_to_source_undoes_to_display(codes):
    data = np.random.default_rng(0).random((3, 4, 5))
    assert np.array_equal(to_source(to_display(data, codes), codes), data)


def test_zarr_affine_maps_the_stored_array_to_the_source_world(tmp_path):
    """For a permuted, flipped source the zarr's affine (of the stored array's reversed axes) still
    puts every voxel where the source put it."""
    import zarr

    source = np.random.default_rng(1).random((4, 5, 6)).astype(np.float32)  # (i, j, k): towards S, A, R
    affine = np.array([[0, 0, 2.0, -10], [0, 1.5, 0, 20], [3.0, 0, 0, 5], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(source, affine), str(tmp_path / "sar.nii.gz"))
    volume = read_volume(tmp_path / "sar.nii.gz")
    write_volume(tmp_path / "v.zarr", volume.data, volume.layer_metadata(), labels=False)
    stored = zarr.open_group(str(tmp_path / "v.zarr"), mode="r")["image"]
    zarr_affine = np.asarray(stored.attrs["affine"])
    data = np.asarray(stored[:])
    assert data.shape == (4, 5, 6)
    for z, y, x in ((0, 0, 0), (3, 4, 5), (1, 2, 3)):
        i, j, k = np.round(np.linalg.solve(affine, zarr_affine @ [x, y, z, 1])[:3]).astype(int)
        assert data[z, y, x] == source[i, j, k]
