"""Turn raw intensities (HU, MR, uint16, float) into the 8-bit slices the models saw in training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: CT window presets as (width, level) in Hounsfield units.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "ct-soft-tissue": (400.0, 40.0),
    "ct-abdomen": (350.0, 50.0),
    "ct-lung": (1500.0, -600.0),
    "ct-bone": (1800.0, 400.0),
    "ct-brain": (80.0, 40.0),
}
PERCENTILE_PRESET = "percentile"
WINDOW_PRESETS = (*CT_PRESETS, PERCENTILE_PRESET)


@dataclass(frozen=True)
class Window:
    """A linear intensity window ``[low, high]`` mapped to ``[0, 255]``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not np.isfinite(self.low) or not np.isfinite(self.high):
            raise ValueError(f"window limits must be finite, got {self.low}, {self.high}")
        if self.high <= self.low:
            raise ValueError(f"window high ({self.high}) must exceed low ({self.low})")

    @classmethod
    def from_width_level(cls, width: float, level: float) -> Window:
        return cls(level - width / 2.0, level + width / 2.0)

    def as_dict(self) -> dict[str, float]:
        return {"low": float(self.low), "high": float(self.high)}


def percentile_window(data: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> Window:
    """Window spanning the given percentiles of ``data`` (MR and other non-calibrated data)."""
    sample = np.asarray(data)
    if sample.size > 4_000_000:  # a strided sample keeps big volumes cheap and is plenty
        sample = sample.reshape(-1)[:: sample.size // 4_000_000 + 1]
    low, high = np.percentile(sample, [lower, upper])
    if high <= low:
        high = low + 1.0
    return Window(float(low), float(high))


def resolve_window(data: np.ndarray, preset: str | Window | tuple[float, float] | None) -> Window | None:
    """Return the window for ``preset``; ``None`` means the data is already 8-bit and needs none.

    ``preset`` may be a preset name, a :class:`Window`, or explicit ``(low, high)`` contrast limits
    (as napari's ``layer.contrast_limits``).
    """
    if isinstance(preset, Window):
        return preset
    if isinstance(preset, tuple | list):
        return Window(float(preset[0]), float(preset[1]))
    if preset is None:
        if np.asarray(data).dtype == np.uint8:
            return None
        return percentile_window(data)
    if preset in CT_PRESETS:
        return Window.from_width_level(*CT_PRESETS[preset])
    if preset == PERCENTILE_PRESET:
        return percentile_window(data)
    raise ValueError(f"unknown window preset {preset!r}; choose one of {', '.join(WINDOW_PRESETS)}")


def apply_window(data: np.ndarray, window: Window | None) -> np.ndarray:
    """Map ``data`` through ``window`` to uint8 (clipped); ``None`` passes uint8 through."""
    data = np.asarray(data)
    if window is None:
        if data.dtype != np.uint8:
            raise ValueError(f"data of dtype {data.dtype} needs a window to become 8-bit")
        return data
    scaled = (data.astype(np.float32) - window.low) * (255.0 / (window.high - window.low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def to_uint8(data: np.ndarray, preset: str | Window | tuple[float, float] | None = None) -> np.ndarray:
    """Window ``data`` (any dtype) to uint8 with ``preset`` (see :func:`resolve_window`)."""
    return apply_window(data, resolve_window(data, preset))
