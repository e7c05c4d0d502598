"""The QC plot marks slices the leak check flagged (headless, Xvfb); no model, no viewer."""

import pytest
from matplotlib.patches import Rectangle

from napari_sammed._napari.qc_plot import QCPlot
from napari_sammed.core.io.qc import TraceRow

pytestmark = pytest.mark.gui


def test_flagged_slices_are_shaded_and_listed(qtbot):
    plot = QCPlot(on_pick=lambda k: None)
    qtbot.addWidget(plot.canvas)
    rows = [TraceRow(5, 4, "seed", None, None, 300),
            TraceRow(5, 3, "propagated", 0.9, 0.85, 290, -1, "", 0.04),
            TraceRow(5, 2, "propagated", 0.86, 0.78, 330, -1, "", 0.31, "leak"),
            TraceRow(5, 1, "rejected", 0.4, 0.5, 90, -1, "low_iou", 0.2)]
    plot.show(rows, {5: {4: None}})
    assert plot.flagged == [2]
    spans = [p for p in plot.axes.patches if isinstance(p, Rectangle)]
    assert len(spans) == 1 and spans[0].get_x() == pytest.approx(1.5)
    assert "!" in [t.get_text() for t in plot.axes.texts]
    assert "look here (leak?)" in [t.get_text() for t in plot.axes.get_legend().get_texts()]
    plot.show(rows[:2])  # a trace without flags clears the marks
    assert plot.flagged == [] and not plot.axes.patches
