"""The segment dock's model menu: its choices, the devices offered, and the line describing the model."""

from __future__ import annotations

from ..core.engine.slice_engine import SliceEngine
from ..core.model.load import describe_default

BUNDLED, CHECKPOINT, CLASSICAL = "LiteMedSAM (bundled)", "checkpoint file", "weight-free (classical)"


def device_choices() -> list[str]:
    """The devices this torch can use, for the device menu."""
    import torch

    found = ["auto", "cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def model_summary(engine: SliceEngine, bundled: bool) -> str:
    """What the dock says about the loaded model, e.g. "LiteMedSAM (bundled, medical, box prompts)"."""
    if bundled:
        return f"{describe_default()} on {engine.device}"
    sha = engine.describe().get("checkpoint_sha256")
    return f"{engine.label} ({engine.frame}px) on {engine.device}" + (f", sha256 {sha[:12]}…" if sha else "")
