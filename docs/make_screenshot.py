"""Regenerate docs/screenshot.png from the real widget (run under Xvfb: xvfb-run python ...)."""

import time
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QApplication

from napari_sammed._napari.demo import open_demo
from napari_sammed._napari.segment_widget import BOXES

viewer, widget = open_demo()
viewer.window._qt_window.resize(1600, 1000)
ref = viewer.layers["CT reference labels"].data
z = viewer.dims.current_step[0]
rows, cols = np.nonzero(ref[z] == 5)


def rectangle(rows, cols):
    r0, r1, c0, c1 = rows.min() - 0.5, rows.max() + 0.5, cols.min() - 0.5, cols.max() + 0.5
    return np.array([[z, r0, c0], [z, r0, c1], [z, r1, c1], [z, r1, c0]])


viewer.layers[BOXES].add_rectangles(rectangle(rows, cols))
for _ in range(50):
    QApplication.processEvents()
    if widget.last_prediction is not None:
        break
    time.sleep(0.1)
widget.object_id.value = 5
widget.accept()
widget.propagation.propagate()  # the liver through the whole volume, with its QC plot
while widget.worker is not None:
    QApplication.processEvents()
    time.sleep(0.05)
rows, cols = np.nonzero(ref[z] == 1)
viewer.layers[BOXES].add_rectangles(rectangle(rows, cols))
for _ in range(20):
    QApplication.processEvents()
    time.sleep(0.05)
viewer.layers.selection.active = viewer.layers[BOXES]
viewer.reset_view()
out = Path(__file__).parent / "screenshot.png"
viewer.screenshot(str(out), canvas_only=False, flash=False)
print("wrote", out)
viewer.close()
