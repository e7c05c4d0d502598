import numpy as np
import pytest

from napari_sammed.core.io.windowing import (
    Window,
    default_window,
    describe_window,
    looks_like_ct,
    percentile_window,
    resolve_window,
    to_uint8,
)


def test_ct_preset_maps_level_to_mid_grey():
    hu = np.array([[-160, 40, 240, -1000, 3000]], np.int16)
    out = to_uint8(hu, "ct-soft-tissue")  # W400 / L40
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 128, 255, 0, 255]]


def test_contrast_limits_and_percentile():
    data = np.linspace(0, 1000, 10001).astype(np.float32)
    assert to_uint8(data, (0.0, 1000.0))[-1] == 255
    w = percentile_window(data)
    assert w.low == pytest.approx(5.0, abs=0.2) and w.high == pytest.approx(995.0, abs=0.2)
    u16 = (data * 60).astype(np.uint16)
    assert to_uint8(u16, "percentile").max() == 255  # windowed, not dtype-range stretched


def test_uint8_passes_through_and_errors_are_clear():
    u8 = np.arange(256, dtype=np.uint8)
    assert resolve_window(u8, None) is None
    assert to_uint8(u8) is not None and np.array_equal(to_uint8(u8), u8)
    with pytest.raises(ValueError, match="unknown window preset"):
        to_uint8(u8.astype(np.int16), "ct-nonsense")
    with pytest.raises(ValueError, match="must exceed"):
        Window(10, 5)


def test_default_window_detects_ct_in_hounsfield_units(ct_volume, mr_volume):
    """The CT gets the soft-tissue preset, the MR the percentile window; both say so."""
    ct = resolve_window(ct_volume, None)
    assert (ct.low, ct.high) == (-160.0, 240.0) and "ct-soft-tissue" in describe_window(ct)
    assert "auto: CT" in ct.name
    assert default_window(ct_volume.astype(np.float32) + 0.37) == ct  # resampled to float: still HU
    padded = ct_volume.copy()
    padded[:, :, :10] = -2048  # outside the scanner's field of view
    assert looks_like_ct(padded)
    mr = resolve_window(mr_volume, "auto")
    assert not looks_like_ct(mr_volume) and mr == percentile_window(mr_volume)
    assert describe_window(mr).startswith("window percentile (auto: not a CT")


def test_microscopy_and_other_data_are_not_taken_for_ct():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 255, (4, 64, 64)).astype(np.uint8)
    assert default_window(u8) is None and describe_window(None) == "window none (8-bit data used as is)"
    u16 = rng.integers(90, 4000, (4, 64, 64)).astype(np.uint16)  # camera offset + signal
    assert not looks_like_ct(u16) and default_window(u16).name.startswith("percentile")
    assert not looks_like_ct((u16.astype(np.int32) - 100).astype(np.int16))  # background subtracted
    assert not looks_like_ct(rng.normal(0, 1, (4, 64, 64)).astype(np.float32))  # z-scored MR
    assert not looks_like_ct(np.full((4, 8, 8), -1000, np.int16))  # air only: no tissue
    huge = np.where(rng.random((4, 64, 64)) < 0.5, -1000, 30000).astype(np.int32)
    assert not looks_like_ct(huge)  # values far outside HU
    assert not looks_like_ct(np.zeros((0, 4, 4), np.int16))


def test_a_nan_voxel_does_not_make_the_window_nan():
    from napari_sammed.core.io.windowing import percentile_window, resolve_window

    data = np.random.default_rng(0).normal(300, 50, (4, 32, 32)).astype(np.float32)
    data[0, 0, 0], data[1, 1, 1] = np.nan, np.inf
    window = resolve_window(data, "auto")
    assert np.isfinite(window.low) and np.isfinite(window.high) and window.low < 300 < window.high
    with pytest.raises(ValueError, match="no finite intensities"):
        percentile_window(np.full((2, 2), np.nan, np.float32))
