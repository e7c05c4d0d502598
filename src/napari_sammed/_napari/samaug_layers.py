"""The SAMAug button: run on the current slice or the whole volume, write/update three layers."""

from __future__ import annotations

import numpy as np
from napari.qt.threading import thread_worker

from ..core.engine.samaug_priors import samaug_slice
from ..core.errors import InputError
from ..core.settings import AmgSettings
from .layers import slice_key

SUFFIXES = {"seg": "SAMAug seg prior", "bnd": "SAMAug boundary prior", "aug": "SAMAug augmented"}


def layer_names(image_name: str) -> dict[str, str]:
    return {k: f"{image_name} {v}" for k, v in SUFFIXES.items()}


def ensure_layers(viewer, image, shape: tuple[int, ...], metadata: dict) -> dict:
    """Create the three layers once; on re-runs reuse them (data reset if the shape changed)."""
    names = layer_names(image.name)
    ndim = len(shape)
    common = {"scale": image.scale[:ndim], "translate": image.translate[:ndim]}
    # Additive blending over the image: dark (low prior) shows the image, bright shows the prior.
    specs = {"seg": ((), {"colormap": "inferno", "blending": "additive", "opacity": 0.6}),
             "bnd": ((), {"colormap": "green", "blending": "additive"}),
             "aug": ((3,), {"rgb": True})}
    layers = {}
    for key, (extra, kwargs) in specs.items():
        full = (*shape, *extra)
        if names[key] in viewer.layers and viewer.layers[names[key]].data.shape == full:
            layer = viewer.layers[names[key]]
        else:
            if names[key] in viewer.layers:
                viewer.layers.remove(names[key])
            layer = viewer.add_image(np.zeros(full, np.float32), name=names[key], visible=key != "aug", **common, **kwargs)
        old = layer.metadata.get("samaug", {})
        same = {k: v for k, v in old.items() if k != "slices"} == metadata["samaug"]
        if not same:  # maps of other settings on other slices are stale: start over
            layer.data[...] = 0
        layer.metadata["samaug"] = {**metadata["samaug"], "slices": old.get("slices", []) if same else []}
        layers[key] = layer
    return layers


def samaug_worker(session, whole_volume: bool, settings: AmgSettings = AmgSettings()):
    """A worker computing SAMAug maps into the three layers; returns it (quit() cancels)."""
    viewer, image, engine = session.viewer, session.image, session.engine
    store = session.volume_embeddings()
    axis = session.slice_axis()
    indices = list(range(store.n_slices)) if whole_volume and axis is not None else [session.current_index()]
    shape = image.data.shape[:2] if image.rgb else image.data.shape
    meta = {"samaug": {"engine": engine.describe(), "amg": settings.as_dict(),
                       "window": None if store.window is None else store.window.as_dict(),
                       "axis": None if axis is None else "zyx"[axis]}}
    layers = ensure_layers(viewer, image, shape, meta)
    raw = np.asarray(image.data)

    @thread_worker(progress={"total": len(indices), "desc": "SAMAug priors"})
    def run():
        for index in indices:
            key = slice_key(axis, index, len(shape))
            yield key, samaug_slice(engine, raw[key], store.window, settings, embedding=store.get(index))

    def show(item):
        key, result = item
        for layer in layers.values():  # which slices hold maps: an export needs every one
            done = set(layer.metadata["samaug"].get("slices", []))
            layer.metadata["samaug"]["slices"] = sorted(done | {0 if axis is None else key[axis]})
        layers["seg"].data[key] = result.seg_prior
        layers["bnd"].data[key] = result.boundary_prior
        layers["aug"].data[key] = np.clip(result.augmented, 0, None)
        for layer in layers.values():
            if not layer.rgb:
                layer.reset_contrast_limits()
            layer.refresh()

    worker = run()
    worker.yielded.connect(show)
    return worker, layers


def layer_priors(viewer, image):
    """The case's SAMAug priors from ``image``'s three SAMAug layers, for an export; raises an
    InputError saying what to do when they are missing or do not cover every slice along z."""
    from ..core.engine.samaug_priors import augmented_uint8
    from ..core.export.case import Priors

    names = layer_names(image.name)
    if any(name not in viewer.layers for name in names.values()):
        raise InputError(None, f"no SAMAug maps of {image.name}: press 'SAMAug priors' (whole volume) in the segment dock")
    seg, bnd, aug = (viewer.layers[names[k]] for k in ("seg", "bnd", "aug"))
    made_by = dict(seg.metadata.get("samaug", {}))
    slices = set(made_by.pop("slices", []))
    count = 1 if image.rgb or image.ndim == 2 else image.data.shape[0]
    if made_by.get("axis") not in (None, "z") or slices != set(range(count)):
        raise InputError(None, f"the SAMAug maps of {image.name} cover {len(slices)} of its {count} axial slices: "
                               "run 'SAMAug priors' on the whole volume along z first")
    return Priors(np.asarray(seg.data, np.float32), np.asarray(bnd.data, np.float32),
                  augmented_uint8(np.asarray(aug.data)), made_by)
