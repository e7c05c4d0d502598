"""Regenerate docs/screenshot.png (CT) and docs/screenshot_mr.png (MR) from the real dock.

Run under Xvfb: ``xvfb-run -s "-screen 0 1600x1000x24" python docs/make_screenshot.py [ct|mr]``.
The demo opens the way a user does; the first organ is accepted and propagated, and a box on the
second shows its live preview, with 'SAM boxes' ready to draw.
"""

import sys
import time
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QApplication

from napari_sammed._napari.demo import open_demo
from napari_sammed._napari.layers import BOXES

LIVER, SPLEEN = 5, 1


def wait(condition, seconds: float = 120.0) -> None:
    end = time.time() + seconds
    while not condition() and time.time() < end:
        QApplication.processEvents()
        time.sleep(0.05)


sample = sys.argv[1] if len(sys.argv) > 1 else "ct"
viewer, widget = open_demo(sample=sample)
viewer.window._qt_window.resize(1600, 1000)
ref = viewer.layers[f"{sample.upper()} reference labels"].data
ref_layer = viewer.layers[f"{sample.upper()} reference labels"]
ref_layer.visible = False  # the picture shows what the tool made, not the answer
z = viewer.dims.current_step[0]


def rectangle(mask):
    rows, cols = np.nonzero(mask)
    r0, r1, c0, c1 = rows.min() - 0.5, rows.max() + 0.5, cols.min() - 0.5, cols.max() + 0.5
    return np.array([[z, r0, c0], [z, r0, c1], [z, r1, c1], [z, r1, c0]])


viewer.layers[BOXES].add_rectangles(rectangle(ref[z] == LIVER))
wait(lambda: widget.last_prediction is not None and widget.worker is None)
widget.object_id.value = LIVER
widget.object_name.value = "liver"
widget.accept()
widget.propagation.propagate()  # the liver through the whole volume, with its QC plot
wait(lambda: widget.worker is None)
widget.object_id.value = SPLEEN
widget.object_name.value = "spleen"
viewer.layers[BOXES].add_rectangles(rectangle(ref[z] == SPLEEN))
wait(lambda: widget.worker is None)
widget.ready_to_draw()
for _ in range(20):
    QApplication.processEvents()
    time.sleep(0.05)
viewer.reset_view()
out = Path(__file__).parent / ("screenshot.png" if sample == "ct" else f"screenshot_{sample}.png")
viewer.screenshot(str(out), canvas_only=False, flash=False)
print("wrote", out)
viewer.close()
