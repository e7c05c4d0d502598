"""Issue 25 item 3: every CLI option, plan key and dock field of a job is a field of that job's
settings dataclass, with the same default."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from napari_sammed.cli import build_parser
from napari_sammed.core.export.entry import ExportOptions
from napari_sammed.core.jobs.plan import ExportSpec, PropagationSpec, SamaugSpec
from napari_sammed.core.settings import AmgSettings, EvaluateSettings, PropagationSettings, SimulateSettings

#: command -> (settings dataclasses, options that are files or run policy, not settings)
COMMANDS = {
    "propagate": ((PropagationSettings,), {"image", "seeds", "output", "axis", "objects", "cache_dir", "overwrite"}),
    "samaug": ((AmgSettings,), {"input", "outdir"}),
    "export": ((ExportOptions, AmgSettings),
               {"image", "labels", "output", "case", "class_names", "qc", "samaug_dir"}),
    "evaluate": ((EvaluateSettings,), {"dataset", "csv"}),
    "simulate": ((SimulateSettings,), {"image", "labels", "classes", "csv", "overwrite", "cache_dir"}),
    # commands without settings: every option is a file, a place or a run policy
    "convert-checkpoint": ((), {"input", "output", "overwrite"}),
    "info": ((), set()),
    "embed": ((), {"image", "cache_dir", "axis", "storage_dtype"}),
    "demo": ((), {"checkpoint", "sample"}),
    "batch": ((), {"plan", "outdir", "cluster", "scheduler"}),
}
COMMON = {"help", "checkpoint", "kind", "device", "dtype", "batch_size", "window"}


def _defaults(*classes) -> dict:
    found = {}
    for cls in classes:
        found.update({f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING})
    return found


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_every_command_is_listed_here():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_cli_option_is_a_setting_with_its_default(command):
    classes, other = COMMANDS[command]
    settings = _defaults(*classes)
    fields = {f.name for cls in classes for f in dataclasses.fields(cls)}
    for action in _subparser(command)._actions:
        if action.dest in other | COMMON:
            continue
        assert action.dest in fields, f"{command} --{action.dest} is no field of {[c.__name__ for c in classes]}"
        if action.dest in settings:
            assert action.default == settings[action.dest], f"{command} --{action.dest}: default differs"


@pytest.mark.parametrize("spec, cls, unset_is_default", [
    (ExportSpec, ExportOptions, False), (SamaugSpec, AmgSettings, False), (PropagationSpec, PropagationSettings, True)])
def test_every_plan_key_is_a_setting_with_its_default(spec, cls, unset_is_default):
    settings = _defaults(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    for name, info in spec.model_fields.items():
        assert name in fields, f"plan key {name} is no field of {cls.__name__}"
        if unset_is_default:  # None: the dataclass's default
            assert info.default is None
        elif name in settings:
            assert info.default == settings[name], f"plan key {name}: default {info.default} != {settings[name]}"


def test_plan_export_and_dock_build_the_same_options(tmp_path):
    """The plan's unset export block and the CLI's bare export give ExportOptions' defaults."""
    from napari_sammed.core.jobs.settings import from_args

    args = _subparser("export").parse_args(["i", "l", str(tmp_path), "--format", "tiff"])
    cli = from_args(ExportOptions, args, folder=str(tmp_path))
    plan = ExportSpec(format="tiff").options(tmp_path)
    default = ExportOptions(format="tiff", folder=str(tmp_path))
    assert cli == default
    assert dataclasses.replace(plan, append=False, overwrite=False) == default
