"""Regenerate docs/samaug.png: SAMAug's priors laid over the CT slice they were made from.

Run under Xvfb: ``xvfb-run -s "-screen 0 1600x1000x24" python docs/make_samaug_picture.py``.
"""

import time
from pathlib import Path

from qtpy.QtWidgets import QApplication

from napari_sammed._napari.demo import open_demo

viewer, widget = open_demo()
viewer.window._qt_window.resize(1600, 1000)
widget.tabs.setCurrentIndex(2)  # the SAMAug tab
worker = widget.run_samaug()
while widget.worker is not None:
    QApplication.processEvents()
    time.sleep(0.05)
for name in ("CT annotations", "CT reference labels", "SAM preview", "SAM points", "SAM boxes"):
    viewer.layers[name].visible = False
for _ in range(20):
    QApplication.processEvents()
    time.sleep(0.05)
viewer.reset_view()
out = Path(__file__).parent / "samaug.png"
viewer.screenshot(str(out), canvas_only=False, flash=False)
print("wrote", out)
viewer.close()
