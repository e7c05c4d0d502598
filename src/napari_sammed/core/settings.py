"""One settings dataclass per job: what each setting is called, its type and its default.

The command line, the plan schema and the docks derive their options from these
(:mod:`.jobs.settings`); the layers that run a job take them as they are. This module imports
nothing heavy (no torch), so the CLI can build its options and answer ``--help`` at once.
(Export's settings, :class:`~.export.entry.ExportOptions`, live beside the export formats.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from .errors import InputError


def check_range(owner: object, name: str, low: float | None = None, high: float | None = None) -> None:
    """Refuse ``owner.name`` unless it is a finite number within [low, high] (``None`` passes)."""
    value = getattr(owner, name)
    if value is None:
        return
    if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = f"in [{low:g}, {high:g}]" if high is not None else f"{low:g} or more" if low is not None else "finite"
        raise InputError(None, f"{name} {value!r}: give a number {bounds}")


DIRECTIONS = {"both": (1, -1), "forward": (1,), "backward": (-1,)}


@dataclass(frozen=True, kw_only=True)
class PropagationSettings:
    """Thresholds and prompt recipe; the defaults are measured on the shared CT and MR."""

    min_iou: float = 0.5  # stop below this predicted IoU
    min_neighbour_iou: float = 0.6  # stop below this IoU with the previous slice's mask
    min_area: int = 4  # pixels; a smaller mask counts as vanished
    # The prompt recipe; None takes the engine's own (``SliceEngine.propagation_recipe``).
    box_margin: float | None = None  # enlarge the previous box by this fraction of its size per side ...
    min_margin: float | None = None  # ... and by at least this many pixels
    interior_points: int = 0  # positive points placed deep inside the previous mask
    use_mask_prompt: bool | None = None
    direction: str = "both"  # "both", "forward" (increasing index) or "backward"
    max_steps: int | None = None  # per front

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise InputError(None, f"direction must be one of {', '.join(DIRECTIONS)}; got {self.direction!r}")
        for name in ("min_iou", "min_neighbour_iou"):
            check_range(self, name, 0.0, 1.0)
        for name in ("min_area", "box_margin", "min_margin", "interior_points"):
            check_range(self, name, 0)
        check_range(self, "max_steps", 1)

    def resolved(self, engine, slice_shape: tuple[int, int]) -> PropagationSettings:
        """These settings with every unset recipe field taken from the engine's recipe."""
        recipe = engine.propagation_recipe(slice_shape)
        return replace(self, **{k: v for k, v in recipe.items() if getattr(self, k) is None})


@dataclass(frozen=True, kw_only=True)
class AmgSettings:
    """Settings of the automatic-mask stage (SAMAug's values by default)."""

    points_per_side: int = 32
    pred_iou_thresh: float = 0.5  # SAMAug's setting (SAM's default is 0.88)
    stability_score_thresh: float | None = None  # None: the model's (SAMAug's 0.95; 0.8 for LiteMedSAM)
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.5
    min_mask_region_area: int = 0  # in slice pixels; 0 keeps all
    points_per_batch: int = 256

    def __post_init__(self) -> None:
        for name in ("points_per_side", "points_per_batch"):
            check_range(self, name, 1)
        check_range(self, "min_mask_region_area", 0)
        for name in ("pred_iou_thresh", "stability_score_thresh", "stability_score_offset", "box_nms_thresh"):
            check_range(self, name)  # any finite threshold: below 0 keeps every mask

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class SimulateSettings:
    """How the simulated annotator works: ``clicks`` after the box; ``from_scratch`` re-propagates
    the whole object after every interaction (what other tools do) instead of updating it."""

    clicks: int = 5
    from_scratch: bool = False

    def __post_init__(self) -> None:
        check_range(self, "clicks", 0)


#: SAM-Med2D's test protocol: the box, then 1, 3 and 5 points.
PROMPT_MODES = ("bbox", "1pt", "3pt", "5pt")


@dataclass(frozen=True, kw_only=True)
class EvaluateSettings:
    """The protocol's knobs: ``prompts``, comma-separated modes (``bbox`` or ``Npt``), and the
    ``seed`` of the point sampling (a seed gives the same points, hence the same Dice, every run)."""

    prompts: str = ",".join(PROMPT_MODES)
    seed: int = 0

    def __post_init__(self) -> None:
        for mode in self.modes:
            if mode != "bbox" and not (mode.endswith("pt") and mode[:-2].isdigit() and int(mode[:-2]) >= 1):
                raise InputError(None, f"unknown prompt mode {mode!r}; use bbox or Npt such as 1pt, 3pt, 5pt")
        if not self.modes:
            raise InputError(None, "no prompt mode; use bbox or Npt such as 1pt, 3pt, 5pt")
        check_range(self, "seed", 0)

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.prompts.split(",") if m.strip())
