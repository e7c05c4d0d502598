"""Open napari with a sample volume, its window, an empty annotation layer and the segment dock."""

from __future__ import annotations

import numpy as np

PLUGIN, SEGMENT_DOCK = "napari-sammed", "Segment (SAM family)"


def open_demo(checkpoint: str | None = None, sample: str = "ct", viewer=None):
    """Returns (viewer, segment dock). The dock is opened the way the Plugins menu opens it."""
    from qtpy.QtWidgets import QApplication

    import napari

    from .._sample_data import sample_ct, sample_mr
    from .prompt_layers import ready_to_draw

    viewer = viewer or napari.Viewer(title="napari-sammed demo")
    for data, kwargs, kind in (sample_ct() if sample == "ct" else sample_mr()):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    image = viewer.layers[-2]
    annotations = viewer.add_labels(np.zeros(image.data.shape, np.int32), name=f"{image.name} annotations",
                                    scale=image.scale, metadata=dict(image.metadata))
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, SEGMENT_DOCK)
    widget.image.value = image
    widget.target.value = annotations
    if checkpoint:
        widget.model.value = "checkpoint file"
        widget.checkpoint.value = checkpoint
        widget.load()
    widget.window.value = "ct-soft-tissue" if sample == "ct" else "percentile"
    ready_to_draw(viewer)
    viewer.dims.set_point(0, viewer.dims.range[0].start + viewer.dims.range[0].step * (image.data.shape[0] // 2))
    # The dock shrinks the canvas only once Qt lays the window out: fit the image after that.
    QApplication.processEvents()
    viewer.reset_view()
    return viewer, widget
