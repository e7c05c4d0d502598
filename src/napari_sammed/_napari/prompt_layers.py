"""The prompt layers ('SAM points', 'SAM boxes') and the preview, and making them ready to draw."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .layers import BOXES, POINTS, PREVIEW


def ensure_prompt_layers(viewer, image, on_prompt: Callable[[], None]) -> None:
    """Create the points, boxes and preview layers over ``image`` once; ``on_prompt`` runs on edits."""
    ndim = 2 if image.rgb else image.ndim
    shape = image.data.shape[:ndim]
    common = {"scale": image.scale[:ndim], "translate": image.translate[:ndim]}
    if POINTS not in viewer.layers:
        points = viewer.add_points(
            np.zeros((0, ndim)), name=POINTS, ndim=ndim, size=max(shape[-2:]) / 40,
            features={"positive": np.zeros(0, bool)}, face_color="positive",
            face_color_cycle=["#ff3030", "#30ff30"], **common)
        points.feature_defaults["positive"] = True
        points.mode = "add"
        points.events.data.connect(lambda _e: on_prompt())
    if BOXES not in viewer.layers:
        boxes = viewer.add_shapes(name=BOXES, ndim=ndim, edge_color="yellow", face_color="transparent",
                                  edge_width=max(shape[-2:]) / 200, **common)
        boxes.events.data.connect(lambda _e: on_prompt())
    if PREVIEW not in viewer.layers or viewer.layers[PREVIEW].data.shape != shape:
        if PREVIEW in viewer.layers:
            viewer.layers.remove(PREVIEW)
        viewer.add_labels(np.zeros(shape, np.uint8), name=PREVIEW, opacity=0.5, **common)


def ready_to_draw(viewer) -> None:
    """Make 'SAM boxes' the active layer with its rectangle tool on: the first drag is a box."""
    if BOXES in viewer.layers:
        boxes = viewer.layers[BOXES]
        viewer.layers.selection.active = boxes
        boxes.mode = "add_rectangle"
