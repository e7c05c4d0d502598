"""One settings dataclass per job, and everything derived from it: CLI options and plan models.

A job's dataclass (:mod:`napari_sammed.core.settings`) holds each setting's name, type, default
and checks. The command line adds one option per entry of :data:`CLI_HELP` (its default, type
and choices read from the dataclass); a plan's block is a pydantic model made from the same
fields that builds the dataclass when the plan is read (:func:`plan_model`), so a plan fails on
the values the command line fails on; the docks start from the dataclass's defaults.
``tests/core/test_settings.py`` fails when any of them names a setting the dataclass lacks or
starts from another default.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from ..export.entry import ExportOptions
from ..settings import AmgSettings, EvaluateSettings, PropagationSettings, SimulateSettings

#: {settings class: {field: (help, option name or None for ``--field-name``)}}: the settings the
#: command line offers; the rest keep their defaults there.
CLI_HELP: dict[type, dict[str, tuple[str, str | None]]] = {
    PropagationSettings: {
        "direction": ("propagate towards higher slices, lower ones, or both", None),
        "min_iou": ("stop under this predicted IoU", None),
        "min_neighbour_iou": ("stop under this IoU with the previous slice", None),
        "min_area": ("pixels; smaller masks count as vanished", None),
        "box_margin": ("grow the previous slice's box by this fraction per side (none: the model's recipe)", None),
        "interior_points": ("positive points inside the previous mask", None),
        "max_steps": ("slices per front at most (none: no limit)", None),
    },
    AmgSettings: {
        "points_per_side": ("automatic-mask point grid", None),
        "pred_iou_thresh": ("keep masks above this predicted IoU", None),
        "stability_score_thresh": ("automatic-mask stability filter (none: 0.95, SAMAug; 0.8 for LiteMedSAM)",
                                   "--stability-thresh"),
    },
    ExportOptions: {
        "format": ("dataset format", None),
        "axis": ("slice axis for SAM-Med2D", None),
        "split": ("SAM-Med2D split; auto: a seeded hash of the case name", None),
        "seed": ("seed of the auto split", None),
        "test_fraction": ("share of cases the auto split tests on", None),
        "all_slices": ("also slices without labels (SAM-Med2D)", None),
        "split_components": ("one mask file per connected part", None),
        "dataset_id": ("nnU-Net dataset number (DatasetNNN_Name)", None),
        "dataset_name": ("dataset name", None),
        "channel": ("nnU-Net channel name (CT, MR, ...)", None),
        "include_image": ("stacks: write the image beside the labels", None),
        "append": ("add this case to an existing dataset", None),
        "overwrite": ("replace this case if it is already there", None),
        "samaug_channels": ("nnU-Net: SAMAug's segmentation and boundary priors as channels _0001 and _0002", None),
        "samaug_images": ("SAM-Med2D: SAMAug's augmented RGB images (priors in channels 1 and 2) as the images",
                          None),
    },
    EvaluateSettings: {
        "prompts": ("prompt modes, comma-separated (bbox, Npt)", None),
        "seed": ("seed of the point sampling", None),
    },
    SimulateSettings: {
        "clicks": ("clicks after the box", None),
        "from_scratch": ("re-propagate the whole object after every interaction (what other tools do)", None),
    },
}

#: Settings a plan does not take: the export folder and its rerun policy belong to the batch run.
PLAN_EXCLUDES = {ExportOptions: ("folder", "append", "overwrite")}

#: What a plan block is built with besides its keys, to check it at load time.
PLAN_GIVEN = {ExportOptions: {"folder": "export"}}


#: Fields typed ``str`` in their dataclass that take one of these values.
CHOICES = {(PropagationSettings, "direction"): Literal["both", "forward", "backward"]}


def hints(cls: type) -> dict[str, Any]:
    """The dataclass's field types, resolved (its module uses ``from __future__ import annotations``)."""
    return {name: CHOICES.get((cls, name), hint) for name, hint in typing.get_type_hints(cls).items()}


def defaults(cls: type) -> dict[str, Any]:
    """{field: default} of a settings dataclass (fields without a default left out)."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def _scalar(hint) -> tuple[type, tuple | None]:
    """(argparse type, choices) of a field type: ``Literal[...]``, ``X | None`` or a plain type."""
    if typing.get_origin(hint) is Literal:
        return type(typing.get_args(hint)[0]), typing.get_args(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return (args[0] if args else hint), None


def add_options(parser: argparse.ArgumentParser, cls: type, only: tuple[str, ...] | None = None) -> None:
    """One ``--option`` per :data:`CLI_HELP` entry of ``cls`` (``dest`` = the field's name)."""
    types, values = hints(cls), defaults(cls)
    for name, (help, flag) in CLI_HELP[cls].items():
        if only is not None and name not in only:
            continue
        flag = flag or "--" + name.replace("_", "-")
        kind, choices = _scalar(types[name])
        if kind is bool:
            action = "store_true" if values[name] is False else argparse.BooleanOptionalAction
            parser.add_argument(flag, dest=name, action=action, default=values[name], help=help)
        else:
            parser.add_argument(flag, dest=name, type=kind, choices=choices, default=values.get(name),
                                metavar=None if choices else flag[2:].upper().replace("-", "_"),
                                required=name not in values, help=help)


def from_args(cls: type, args: argparse.Namespace, **given):
    """``cls`` from the options :func:`add_options` added (and ``given`` values)."""
    taken = {name: getattr(args, name) for name in CLI_HELP[cls] if hasattr(args, name)}
    return cls(**{**taken, **given})


def plan_model(cls: type, name: str, unset_is_default: bool = False) -> type[BaseModel]:
    """A strict pydantic model of ``cls``'s fields (less :data:`PLAN_EXCLUDES`) for plan files.

    ``unset_is_default``: every key is optional with ``None`` meaning "the dataclass's default"
    (propagation: there ``None`` in the dataclass itself means the model's recipe)."""
    types, values = hints(cls), defaults(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        if f.name in PLAN_EXCLUDES.get(cls, ()) or f.name not in CLI_HELP[cls]:
            continue
        hint = types[f.name] | None if unset_is_default else types[f.name]
        default = None if unset_is_default else values.get(f.name, ...)
        fields[f.name] = (hint, Field(default))

    def built(block: BaseModel) -> BaseModel:  # the dataclass's own checks, when the plan is read
        cls(**plan_values(block), **PLAN_GIVEN.get(cls, {}))
        return block

    return create_model(name, __config__=ConfigDict(extra="forbid", frozen=True), **fields,
                        __validators__={"_built": model_validator(mode="after")(built)})


def plan_values(spec: BaseModel) -> dict:
    """A plan block's values that are set (``None`` = the dataclass's default)."""
    return {k: v for k, v in spec.model_dump().items() if v is not None}
