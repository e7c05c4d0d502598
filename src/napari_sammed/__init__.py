"""napari-sammed: SAM-family (LiteMedSAM, SAM-Med2D, SAM, MedSAM) medical annotation for napari
(core API importable without Qt)."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = ["load_model", "SliceEngine", "Prompt", "Prediction", "to_uint8", "samaug", "VolumeEmbeddings",
           "VolumeAnnotator", "resolve_window", "propagate", "seeds_from_labels", "PropagationSettings", "Propagation",
           "__version__"]

_LAZY = {
    "load_model": ("napari_sammed.core.engine.families", "load_model"),
    "SliceEngine": ("napari_sammed.core.engine.slice_engine", "SliceEngine"),
    "Prompt": ("napari_sammed.core.engine.slice_engine", "Prompt"),
    "Prediction": ("napari_sammed.core.engine.slice_engine", "Prediction"),
    "to_uint8": ("napari_sammed.core.io.windowing", "to_uint8"),
    "samaug": ("napari_sammed.core.engine.samaug_priors", None),
    "VolumeEmbeddings": ("napari_sammed.core.volume.embeddings", "VolumeEmbeddings"),
    "VolumeAnnotator": ("napari_sammed.core.volume.annotator", "VolumeAnnotator"),
    "resolve_window": ("napari_sammed.core.io.windowing", "resolve_window"),
    "propagate": ("napari_sammed.core.volume.propagation", "propagate"),
    "seeds_from_labels": ("napari_sammed.core.volume.propagation", "seeds_from_labels"),
    "PropagationSettings": ("napari_sammed.core.settings", "PropagationSettings"),
    "Propagation": ("napari_sammed.core.volume.propagation", "Propagation"),
}


def __getattr__(name: str) -> Any:
    # Lazy so that `import napari_sammed` (npe2 reads the manifest through it) stays cheap.
    if name not in _LAZY:
        raise AttributeError(f"module 'napari_sammed' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    return value if attr is None else getattr(value, attr)
