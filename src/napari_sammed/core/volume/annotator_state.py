"""What a 3D annotation session remembers: per object its masks and the slices the user
confirmed, and per interaction what undo needs to take it back."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Confirmed:
    """What the user gave on one slice. Clicks are replayed on ``base`` (the slice's logits
    before its first click) or on the box's mask, so their order never compounds errors."""

    box: np.ndarray | None = None
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    base: np.ndarray | None = None
    painted: bool = False


@dataclass
class ObjectState:
    """One object of a session: its masks, the logits that made them, the slices the user
    confirmed and its z-range (first, last slice; None: not known)."""

    masks: dict[int, np.ndarray] = field(default_factory=dict)  # slice -> (H, W) bool, never empty
    lows: dict[int, np.ndarray] = field(default_factory=dict)  # slice -> low-res logits that made it
    confirmed: dict[int, Confirmed] = field(default_factory=dict)
    z_range: tuple[int, int] | None = None


@dataclass
class UndoStep:
    """One interaction, enough to take it back."""

    object_id: int
    confirmed: dict[int, Confirmed]
    z_range: tuple[int, int] | None
    slices: dict[int, tuple[np.ndarray | None, np.ndarray | None]] = field(default_factory=dict)
