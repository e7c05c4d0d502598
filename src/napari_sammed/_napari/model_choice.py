"""The segment dock's model menu: its choices, the devices offered, and the line describing the model."""

from __future__ import annotations

from ..core.engine.families import describe_default, load_model
from ..core.engine.slice_engine import SliceEngine
from ..core.model.load import available_devices

BUNDLED, CHECKPOINT, WEIGHT_FREE = "LiteMedSAM (bundled)", "checkpoint file", "weight-free (no network)"
#: What loading a model raises for bad files or devices (torch's device errors vary in type).
LOAD_ERRORS = (ValueError, RuntimeError, AssertionError, OSError)


def resolve_choice(choice: str, path: str) -> str:
    """The menu's choice, corrected by the checkpoint field: a path typed in (or remembered) is
    what the user asked for; *checkpoint file* without one falls back to the bundled model."""
    given = path not in ("", ".")
    if choice == CHECKPOINT and not given:
        return BUNDLED
    return CHECKPOINT if choice == BUNDLED and given else choice


def load_choice(choice: str, path: str, device: str, precision: str):
    """Load what :func:`resolve_choice` settled on; raises one of :data:`LOAD_ERRORS`."""
    if choice == WEIGHT_FREE:
        return load_model(kind="weight-free")
    return load_model(path if choice == CHECKPOINT else None, device=device, dtype=precision)


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
