"""Progress a dock can read: slices done of the total and the time left, in a label."""

from __future__ import annotations

import time

from magicgui.widgets import Label


class ProgressNote:
    """Writes "embedding 12 / 30 slices · ~20 s left" into a label as a worker yields counts done."""

    def __init__(self, label: Label, total: int, what: str, session=None) -> None:
        self.label, self.total, self.what, self.session = label, total, what, session
        self.started, self.first = time.perf_counter(), None

    def __call__(self, done: int) -> None:
        now = time.perf_counter()
        if self.first is None:  # slices already cached cost nothing: time only the new ones
            self.first = (done, now)
        text = f"{self.what} {done} / {self.total} slices"
        new, elapsed = done - self.first[0], now - self.first[1]
        if new > 0:
            per_slice = elapsed / new
            if self.session is not None:
                self.session.seconds_per_slice = per_slice
            text += f" · ~{per_slice * (self.total - done):.0f} s left"
        self.label.value = text
