"""The plan of a bulk run (``napari-sammed batch PLAN OUTDIR``): YAML or JSON, validated up front.

::

    steps: [propagate, samaug, export]        # any subset, in this order
    export: {format: nnunet, dataset_id: 12, dataset_name: Abdomen, channel: CT}
    class_names: {1: spleen, 5: liver}
    window: ct-abdomen                         # default for every case (default: auto - ct-soft-tissue for a CT in HU, else percentile)
    cases:
      - {name: case01, image: imgs/case01.nii.gz, seeds: seeds/case01.nii.gz}
      - {name: case02, image: imgs/case02.nii.gz, seeds: seeds/case02.json, window: percentile}

Paths are relative to the plan file. Anything wrong (syntax, unknown keys, missing files,
duplicate case names) is a :class:`PlanError` naming the plan and the place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..export.case import CASE_NAME, class_name
from ..export.entry import ExportOptions
from ..export.nnunet import dataset_folder
from ..io.windowing import WINDOW_PRESETS
from ..settings import AmgSettings, PropagationSettings
from .settings import plan_model, plan_values

STEPS = ("propagate", "samaug", "export")


class PlanError(ValueError):
    """A plan that cannot run: one line, starting with the plan's path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_window(value):
    if isinstance(value, str) and value not in WINDOW_PRESETS:
        raise ValueError(f"unknown window {value!r}; use one of {', '.join(WINDOW_PRESETS)} or [low, high]")
    if isinstance(value, tuple) and not value[1] > value[0]:
        raise ValueError(f"window [low, high] needs high > low, got {list(value)}")
    return value


#: A plan's window as ``--window`` takes it (a preset name or [low, high]); not ``io.windowing.Window``.
WindowOption = Annotated[str | tuple[float, float] | None, AfterValidator(_check_window)]


class CaseSpec(_Strict):
    """One case of a plan: its image and seeds (or finished labels), paths relative to the plan."""

    name: str
    image: Path
    seeds: Path | None = None  # label volume or prompts JSON (propagate step)
    labels: Path | None = None  # finished labels, for plans without the propagate step
    window: WindowOption = None  # default: the plan's

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not CASE_NAME.fullmatch(value):  # match's $ would let a trailing newline through
            raise ValueError(f"case name {value!r}: use letters, digits, '_', '-' or '.', starting with a letter or digit")
        return value


class ExportSpec(plan_model(ExportOptions, "ExportFields")):
    """The plan's export: format and the options of that format (:class:`ExportOptions`' fields
    less the folder and the rerun policy, which the batch run owns)."""

    @field_validator("dataset_name")
    @classmethod
    def _dataset_name(cls, value: str) -> str:
        dataset_folder(".", 1, value)  # raises on names nnU-Net (or a folder) cannot take
        return value

    def options(self, folder: str | Path) -> ExportOptions:
        """The export into ``folder``; a rerun replaces a case's earlier export."""
        return ExportOptions(**self.model_dump(), folder=str(folder), append=True, overwrite=True)


class PropagationSpec(plan_model(PropagationSettings, "PropagationFields", unset_is_default=True)):
    """Propagation settings in a plan; unset values are :class:`PropagationSettings`' (the model's recipe)."""

    def settings(self) -> PropagationSettings:
        return PropagationSettings(**plan_values(self))


class SamaugSpec(plan_model(AmgSettings, "SamaugFields")):
    """SAMAug settings in a plan (:class:`AmgSettings`' defaults); an unset stability threshold is the model's."""

    def settings(self) -> AmgSettings:
        return AmgSettings(**self.model_dump())


class Plan(_Strict):
    """A whole bulk run: steps, cases, export, class names, window, settings."""

    steps: list[Literal["propagate", "samaug", "export"]] = ["propagate"]
    cases: list[CaseSpec] = Field(min_length=1)
    export: ExportSpec | None = None
    class_names: dict[int, str] = {}
    window: WindowOption = None  # auto: ct-soft-tissue for a CT in HU, else percentile (resolve_window)
    axis: Literal["z", "y", "x"] = "z"  # propagation axis
    propagation: PropagationSpec = PropagationSpec()
    samaug: SamaugSpec = SamaugSpec()
    keep_cache: bool = True  # keep each case's embedding cache (OUTDIR/.cache/<case>) for reruns
    source: Path | None = None  # the plan file (set by load_plan)

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[str]) -> list[str]:
        if not steps:
            raise ValueError(f"name at least one of {', '.join(STEPS)}")
        if len(set(steps)) != len(steps) or steps != sorted(steps, key=STEPS.index):
            raise ValueError(f"steps run in the order {', '.join(STEPS)}, each once; got {', '.join(steps)}")
        return steps

    @field_validator("class_names")
    @classmethod
    def _class_names(cls, names: dict[int, str]) -> dict[int, str]:
        for label, name in names.items():
            if label < 1:
                raise ValueError(f"class ids start at 1 (0 is background), got {label}")
            class_name(name)
        return names

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        if "export" in self.steps and self.export is None:
            raise ValueError("the export step needs an export block, e.g. export: {format: nnunet}")
        seen: set[str] = set()
        for case in self.cases:
            if case.name.lower() in seen:
                raise ValueError(f"case name {case.name!r} appears twice (names are case-insensitive folders)")
            seen.add(case.name.lower())
            if "propagate" in self.steps and case.seeds is None:
                raise ValueError(f"case {case.name!r}: the propagate step needs seeds")
        return self

    def window_of(self, case: CaseSpec) -> WindowOption:
        return case.window if case.window is not None else self.window


def _format_error(error: ValidationError, raw: dict) -> str:
    parts = []
    for item in error.errors()[:3]:
        loc = list(item["loc"])
        if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
            cases = raw.get("cases") or []
            name = cases[loc[1]].get("name") if loc[1] < len(cases) and isinstance(cases[loc[1]], dict) else None
            loc[1] = f"{loc[1]}" + (f" ({name})" if name else "")
        where = ".".join(str(p) for p in loc)
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    more = len(error.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def load_plan(path: str | Path) -> Plan:
    """Read, validate and resolve a plan; raises :class:`PlanError` (one line) on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise PlanError(f"{path}: cannot read the plan ({error.strerror or error})") from None
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text)
    except Exception as error:  # noqa: BLE001 - json and yaml raise their own types
        first = " ".join(str(error).split())
        raise PlanError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} ({first})") from None
    if not isinstance(raw, dict):
        raise PlanError(f"{path}: expected a mapping with steps and cases, got {type(raw).__name__}")
    if "source" in raw:
        raise PlanError(f"{path}: source: not a plan key")
    try:
        plan = Plan.model_validate(raw)
    except ValidationError as error:
        raise PlanError(f"{path}: {_format_error(error, raw)}") from None
    base = path.resolve().parent
    cases, missing = [], []
    for case in plan.cases:
        resolved = {}
        for key in ("image", "seeds", "labels"):
            value = getattr(case, key)
            if value is None:
                continue
            full = (base / value.expanduser()).resolve() if not value.expanduser().is_absolute() else value.expanduser()
            if not full.exists():
                missing.append(f"{case.name}.{key} {value}")
            resolved[key] = full
        cases.append(case.model_copy(update=resolved))
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise PlanError(f"{path}: no such file: {', '.join(missing[:3])}{more}")
    return plan.model_copy(update={"cases": cases, "source": path.resolve()})
