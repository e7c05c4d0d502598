"""Headless GUI test: the SAMAug button on the CT sample."""

import numpy as np
import pytest

from napari_sammed._napari.samaug_layers import layer_names
from napari_sammed._sample_data import sample_ct
from tests.napari.conftest import open_segment_dock

pytestmark = pytest.mark.gui


def test_button_creates_three_layers_then_updates(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    for data, kwargs, kind in sample_ct():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = open_segment_dock(viewer)
    image = viewer.layers["CT"]
    widget.image.value = image
    widget.window.value = "ct-soft-tissue"
    viewer.dims.current_step = (15, *viewer.dims.current_step[1:])
    before = len(viewer.layers)
    with qtbot.waitSignal(widget.start_samaug().finished, timeout=60_000):
        pass
    names = layer_names("CT")
    assert len(viewer.layers) == before + 3
    seg, bnd, aug = (viewer.layers[names[k]] for k in ("seg", "bnd", "aug"))
    assert seg.data.shape == bnd.data.shape == image.data.shape and aug.data.shape == (*image.data.shape, 3)
    assert seg.data.dtype == np.float32 and aug.data.dtype == np.float32 and aug.rgb
    assert tuple(seg.scale) == tuple(image.scale) == tuple(aug.scale)
    # The priors lie over the CT and let it show through (an opaque magma layer hid it).
    assert seg.blending == bnd.blending == "additive" and seg.opacity < 1 and seg.visible and bnd.visible
    assert not aug.visible
    assert seg.data[15].any() and not seg.data[14].any()
    assert "weight-free" in seg.metadata["samaug"]["engine"]["kind"]
    first = seg
    viewer.dims.current_step = (10, *viewer.dims.current_step[1:])
    with qtbot.waitSignal(widget.start_samaug().finished, timeout=60_000):
        pass
    assert len(viewer.layers) == before + 3
    assert viewer.layers[names["seg"]] is first
    assert first.data[10].any() and first.data[15].any()
