"""The propagation QC plot: predicted IoU and IoU with the previous slice, per object and slice.

Rejected slices (where a front stopped) are red crosses; seeds are marked on the axis. Slices the
leak check flagged ("look here": the mask was kept) are shaded orange with a "!" on top, because a
leak keeps both IoU curves high. Clicking anywhere in the plot calls ``on_pick(slice)`` with the
nearest slice, so the viewer can jump there.
"""

from __future__ import annotations

from collections.abc import Callable

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

from ..core.io.qc import TraceRow


class QCPlot:
    def __init__(self, on_pick: Callable[[int], None]) -> None:
        self.on_pick = on_pick
        self.figure = Figure(figsize=(3.2, 2.0), dpi=100, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(160)
        self.axes = self.figure.add_subplot()
        self.canvas.mpl_connect("button_press_event", self._clicked)
        self.slices: list[int] = []
        self.flagged: list[int] = []  # slices marked "look here"
        self._style()

    def _style(self) -> None:
        ax = self.axes
        ax.set_xlabel("slice", fontsize=8)
        ax.set_ylabel("IoU", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.tick_params(labelsize=7)

    def show(self, rows: list[TraceRow], seeds: dict | None = None) -> None:
        ax = self.axes
        ax.clear()
        self._style()
        by_object: dict[int, list[TraceRow]] = {}
        for row in rows:
            by_object.setdefault(row.object_id, []).append(row)
        for object_id, object_rows in sorted(by_object.items()):
            kept = sorted((r for r in object_rows if r.source == "propagated"), key=lambda r: r.slice)
            line = ax.plot([r.slice for r in kept], [r.predicted_iou for r in kept], ".-", ms=3, lw=1,
                           label=f"{object_id} predicted")[0]
            ax.plot([r.slice for r in kept], [r.neighbour_iou for r in kept], ".:", ms=3, lw=1,
                    color=line.get_color(), label=f"{object_id} vs previous")
            bad = [r for r in object_rows if r.source == "rejected"]
            ax.plot([r.slice for r in bad], [r.neighbour_iou or 0.0 for r in bad], "x", color="red", ms=5)
            seed_slices = sorted((seeds or {}).get(object_id, {}))
            ax.plot(seed_slices, [1.02] * len(seed_slices), "v", color=line.get_color(), ms=5)
        self.flagged = sorted({r.slice for r in rows if r.flag})
        for k in self.flagged:
            ax.axvspan(k - 0.5, k + 0.5, color="orange", alpha=0.3, lw=0, label="_look here")
            ax.text(k, 0.03, "!", color="darkorange", ha="center", fontsize=8, fontweight="bold")
        if self.flagged:
            ax.plot([], [], "s", color="orange", alpha=0.5, ms=6, label="look here (leak?)")
        if by_object:
            ax.legend(fontsize=6, loc="best")  # "best": keeps clear of the "!" marks
        self.slices = sorted({r.slice for r in rows})
        self.canvas.draw_idle()

    def _clicked(self, event) -> None:
        if event.inaxes is not self.axes or event.xdata is None or not self.slices:
            return
        nearest = min(self.slices, key=lambda k: abs(k - event.xdata))
        self.on_pick(int(nearest))
