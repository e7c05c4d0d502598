"""Turn raw intensities (HU, MR, uint16, float) into the 8-bit slices the models saw in training."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError

#: CT window presets as (width, level) in Hounsfield units.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "ct-soft-tissue": (400.0, 40.0),
    "ct-abdomen": (350.0, 50.0),
    "ct-lung": (1500.0, -600.0),
    "ct-bone": (1800.0, 400.0),
    "ct-brain": (80.0, 40.0),
}
PERCENTILE_PRESET = "percentile"
AUTO_PRESET = "auto"
WINDOW_PRESETS = (*CT_PRESETS, PERCENTILE_PRESET, AUTO_PRESET)
#: The window a CT in Hounsfield units gets by default: the best on the shared CT's organs
#: (benchmarks/bench_interactive.py's first-guess table; the percentile window, stretched by air
#: and bone, loses about .13 of Dice on them).
CT_DEFAULT_PRESET = "ct-soft-tissue"


@dataclass(frozen=True)
class Window:
    """A linear intensity window ``[low, high]`` mapped to ``[0, 255]``."""

    low: float
    high: float
    #: Where the limits came from (a preset name, "percentile", "auto: ..."), for messages only.
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not np.isfinite(self.low) or not np.isfinite(self.high):
            raise InputError(None, f"window limits must be finite, got {self.low}, {self.high}")
        if self.high <= self.low:
            raise InputError(None, f"window high ({self.high}) must exceed low ({self.low})")

    @classmethod
    def from_width_level(cls, width: float, level: float, name: str = "") -> Window:
        return cls(level - width / 2.0, level + width / 2.0, name)

    @classmethod
    def preset(cls, name: str) -> Window:
        """A CT preset by name (``ct-soft-tissue`` ...)."""
        return cls.from_width_level(*CT_PRESETS[name], name=name)

    def as_dict(self) -> dict[str, float]:
        return {"low": float(self.low), "high": float(self.high)}


def percentile_window(data: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> Window:
    """Window spanning the given percentiles of ``data`` (MR and other non-calibrated data)."""
    sample = _sample(data, 4_000_000)  # a strided sample keeps big volumes cheap and is plenty
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]  # a NaN or inf voxel must not make the window NaN
    if sample.size == 0:
        raise InputError(None, "no finite intensities to take a percentile window from")
    low, high = np.percentile(sample, [lower, upper])
    if high <= low:
        high = low + 1.0
    return Window(float(low), float(high), PERCENTILE_PRESET)


def _sample(data: np.ndarray, size: int = 1_000_000) -> np.ndarray:
    """At most ~``size`` values of ``data``, strided over the whole array (cheap on big volumes)."""
    flat = np.asarray(data).reshape(-1)
    return flat[:: flat.size // size + 1] if flat.size > size else flat


def looks_like_ct(data: np.ndarray) -> bool:
    """True for a CT in Hounsfield units.

    HU put air at -1000 and soft tissue at 0..100 on every scanner, which no MR, microscope or
    8-bit image does: a CT has a share of voxels at -1100..-900 (air around and inside the
    body), soft tissue above 0, and almost nothing outside -3100..4000 (padding, metal).
    Unsigned data cannot hold -1000 and is never taken for CT. Integer values are not required:
    a CT resampled to float keeps its HU.
    """
    data = np.asarray(data)
    if data.size == 0 or data.dtype.kind not in "if" or data.ndim < 2:
        return False
    values = _sample(data).astype(np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return False
    air = np.mean((values >= -1100) & (values <= -900))
    outside = np.mean((values < -3100) | (values > 4000))
    return bool(air >= 0.005 and np.percentile(values, 99) > 0 and outside < 0.001)


def default_window(data: np.ndarray) -> Window | None:
    """The window used when none is asked for: none for 8-bit data, the soft-tissue preset for a
    CT in Hounsfield units (a percentile window there is set by air and bone and washes out the
    organs), else the 0.5-99.5 percentile window (MR, microscopy, anything uncalibrated)."""
    data = np.asarray(data)
    if data.dtype == np.uint8:
        return None
    if looks_like_ct(data):
        return replace(Window.preset(CT_DEFAULT_PRESET), name=f"{CT_DEFAULT_PRESET} (auto: CT in Hounsfield units)")
    return replace(percentile_window(data), name=f"{PERCENTILE_PRESET} (auto: not a CT in Hounsfield units)")


def describe_window(window: Window | None) -> str:
    """One line for users: ``window ct-soft-tissue (auto: CT ...): -160..240``."""
    if window is None:
        return "window none (8-bit data used as is)"
    name = f"{window.name}: " if window.name else ""
    return f"window {name}{window.low:g}..{window.high:g}"


def resolve_window(data: np.ndarray, preset: str | Window | tuple[float, float] | None) -> Window | None:
    """Return the window for ``preset``; ``None`` means the data is already 8-bit and needs none.

    ``preset`` None (or "auto") is :func:`default_window`.
    ``preset`` may be a preset name, a :class:`Window`, or explicit ``(low, high)`` contrast limits
    (as napari's ``layer.contrast_limits``).
    """
    if isinstance(preset, Window):
        return preset
    if isinstance(preset, tuple | list):
        return Window(float(preset[0]), float(preset[1]), "given")
    if preset is None or preset == AUTO_PRESET:
        return default_window(data)
    if preset in CT_PRESETS:
        return Window.preset(preset)
    if preset == PERCENTILE_PRESET:
        return percentile_window(data)
    raise InputError(None, f"unknown window preset {preset!r}; choose one of {', '.join(WINDOW_PRESETS)}")


def apply_window(data: np.ndarray, window: Window | None) -> np.ndarray:
    """Map ``data`` through ``window`` to uint8 (clipped); ``None`` passes uint8 through."""
    data = np.asarray(data)
    if window is None:
        if data.dtype != np.uint8:
            raise InputError(None, f"data of dtype {data.dtype} needs a window to become 8-bit")
        return data
    scaled = (data.astype(np.float32) - window.low) * (255.0 / (window.high - window.low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def to_uint8(data: np.ndarray, preset: str | Window | tuple[float, float] | None = None) -> np.ndarray:
    """Window ``data`` (any dtype) to uint8 with ``preset`` (see :func:`resolve_window`)."""
    return apply_window(data, resolve_window(data, preset))
