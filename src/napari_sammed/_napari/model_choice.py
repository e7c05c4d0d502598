"""The segment dock's model menu: its choices, the devices offered, and the line describing the model."""

from __future__ import annotations

from ..core.engine.slice_engine import SliceEngine
from ..core.model.load import available_devices, describe_default

BUNDLED, CHECKPOINT, CLASSICAL = "LiteMedSAM (bundled)", "checkpoint file", "weight-free (classical)"


def device_choices() -> list[str]:
    """The devices this torch can use, for the device menu (``cuda`` stands for the first GPU)."""
    found = available_devices()
    return ["auto", *(["cuda"] if "cuda:0" in found else []), *found]


def model_summary(engine: SliceEngine, bundled: bool) -> str:
    """What the dock says about the loaded model, e.g. "LiteMedSAM (bundled, medical, box prompts)"."""
    if bundled:
        return f"{describe_default()} on {engine.device}"
    sha = engine.describe().get("checkpoint_sha256")
    return f"{engine.label} ({engine.frame}px) on {engine.device}" + (f", sha256 {sha[:12]}…" if sha else "")
