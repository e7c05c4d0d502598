"""DICOM folders: several series in one folder, missing slices, duplicate positions."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sammed.core.io.inputs import InputError, InputWarning
from napari_sammed.core.io.read import read_volume
from tests.hostile.conftest import one_line_error, run, write_dicom_series

SERIES_A, SERIES_B = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"


def test_two_series_in_one_folder_take_the_largest_and_say_so(tmp_path, capsys):
    folder = tmp_path / "dicom"
    write_dicom_series(folder, SERIES_A, [0.0, 2.5, 5.0, 7.5, 10.0, 12.5], 100, "a")
    write_dicom_series(folder, SERIES_B, [1.0, 3.5, 6.0, 8.5], 900, "b", series_number=2)  # same size, interleaved z
    with pytest.warns(InputWarning, match=rf"2 DICOM series in one folder; reading the largest, {SERIES_A} "
                                          rf"\(6 images\), and ignoring {SERIES_B} \(4 images\)"):
        volume = read_volume(folder)
    assert volume.data.shape == (6, 16, 16)
    np.testing.assert_array_equal(volume.data[:, 0, 0], [105, 104, 103, 102, 101, 100])  # head first; no slice of B
    assert volume.spacing == (2.5, 0.7, 0.7)
    assert volume.metadata["series_instance_uid"] == SERIES_A

    code, out, err = run(capsys, "embed", folder, "--cache-dir", tmp_path / "cache", "--kind", "weight-free")
    assert code == 0 and "6 embedded" in out
    warned = [line for line in err.splitlines() if ": warning: " in line]  # among the status lines
    assert warned == [f"napari-sammed embed: warning: {folder}: 2 DICOM series in one folder; reading "
                      f"the largest, {SERIES_A} (6 images), and ignoring {SERIES_B} (4 images)"]


def test_missing_slice_is_refused_naming_its_position(tmp_path, capsys):
    folder = tmp_path / "gap"
    write_dicom_series(folder, SERIES_A, [0.0, 2.5, 5.0, 10.0, 12.5, 20.0], 100, "a")  # 7.5, 15.0 and 17.5 missing
    with pytest.raises(InputError, match=r"has a gap: no slice at position\(s\) 7.50, 15.00, 17.50 mm"):
        read_volume(folder)
    code, _, err = run(capsys, "embed", folder, "--cache-dir", tmp_path / "cache", "--kind", "weight-free")
    assert code == 2
    one_line_error(err, "embed", f"series {SERIES_A} has a gap: no slice at position(s) 7.50, 15.00, 17.50 mm "
                                 "along the slice normal (step 2.50 mm, 6 slices)", folder)
    assert not (tmp_path / "cache").exists()


def test_duplicate_positions_are_refused(tmp_path):
    folder = tmp_path / "dup"
    write_dicom_series(folder, SERIES_A, [0.0, 2.5, 2.5, 5.0], 100, "a")
    with pytest.raises(InputError, match=r"two slices at position\(s\) 2.50 mm"):
        read_volume(folder)
