"""The preview: one decoded prompt and exactly where it belongs (image, slice axis, slice, object).

Accept writes a preview only onto its own slice, while that slice is shown (Shift-A acts on what
the user sees); the propagate seed is a preview on its own slice, wherever the user looks. What
cannot be written is refused with a sentence for the dock's status line, never written elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from napari.layers import Image

from ..core.engine.slice_engine import Prediction

NOTHING = "nothing to accept: draw a box or click a point first"


@dataclass(frozen=True)
class Preview:
    """A prediction and its place. Until accepted, its object is the dock's current object id
    (the user may pick the id after seeing the mask); its slice never changes."""

    image: Image
    axis: int | None  # None for a 2D or RGB image (a single slice, index 0)
    index: int
    object_id: int
    prediction: Prediction

    def belongs_to(self, image: Image | None, axis: int | None) -> bool:
        return self.image is image and self.axis == axis

    def describe(self) -> str:
        """'slice 12 · object 5 · predicted IoU 0.951'."""
        place = "" if self.axis is None else f"slice {self.index} · "
        return f"{place}object {self.object_id} · predicted IoU {self.prediction.iou:.3f}"


def preview_note(preview: Preview | None, image: Image | None, axis: int | None, index: int,
                 waiting: bool, empty: str = "–") -> str:
    """The status line for slice ``index`` of ``image``: its preview, or why Accept writes nothing
    (``waiting``: the slice has a prompt and its embedding is still being made)."""
    if preview is not None and preview.belongs_to(image, axis) and preview.index == index:
        return preview.describe()
    if waiting:
        return f"slice {index} is still being embedded; Accept once its preview shows"
    if preview is not None and preview.belongs_to(image, axis):
        return f"the preview is of slice {preview.index}; go back to it or draw here"
    if preview is not None:
        return "the preview is of another image or slice axis; draw again"
    return empty
