"""Open napari with the CT sample, its soft-tissue window and the segment widget docked."""

from __future__ import annotations


def open_demo(checkpoint: str | None = None, sample: str = "ct"):
    import napari

    from .._sample_data import sample_ct, sample_mr
    from .segment_widget import SegmentWidget

    viewer = napari.Viewer(title="napari-sammed demo")
    for data, kwargs, kind in (sample_ct() if sample == "ct" else sample_mr()):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = SegmentWidget(viewer)
    if checkpoint:
        widget.checkpoint.value = checkpoint
        widget.load()
    widget.window.value = "ct-soft-tissue" if sample == "ct" else "percentile"
    viewer.window.add_dock_widget(widget, name="SAM-Med2D segment", area="right")
    viewer.dims.set_point(0, viewer.dims.range[0].start + viewer.dims.range[0].step * 15)
    return viewer, widget
