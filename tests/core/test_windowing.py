import numpy as np
import pytest

from napari_sammed.core.io.windowing import Window, percentile_window, resolve_window, to_uint8


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
