"""Issue 25 item 3: every CLI option, plan key and dock field of a job is a field of that job's
settings dataclass, with the same default."""

from __future__ import annotations

import argparse
import dataclasses
import re

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
    "evaluate": ((EvaluateSettings,), {"dataset", "csv", "overwrite"}),
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


BAD_VALUES = [
    (["propagate", "{missing}", "{missing}", "{out}.nii.gz", "--box-margin", "nan"], "box_margin nan"),
    (["propagate", "{missing}", "{missing}", "{out}.nii.gz", "--max-steps", "0"], "max_steps 0: give a number 1 or more"),
    (["propagate", "{missing}", "{missing}", "{out}.nii.gz", "--interior-points", "-3"], "interior_points -3"),
    (["propagate", "{missing}", "{missing}", "{out}.nii.gz", "--min-area", "-5"], "min_area -5"),
    (["propagate", "{missing}", "{missing}", "{out}.nii.gz", "--min-iou", "2"], "min_iou 2.0: give a number in [0, 1]"),
    (["samaug", "{missing}", "{out}", "--points-per-side", "0"], "points_per_side 0"),
    (["samaug", "{missing}", "{out}", "--pred-iou-thresh", "nan"], "pred_iou_thresh nan"),
    (["export", "{missing}", "{missing}", "{out}", "--format", "sammed2d", "--test-fraction", "2"], "test_fraction 2.0"),
    (["export", "{missing}", "{missing}", "{out}", "--format", "nnunet", "--dataset-id", "0"], "dataset_id 0"),
    (["evaluate", "{missing}", "--seed", "-1"], "seed -1"),
    (["simulate", "{missing}", "{missing}", "--clicks", "-1"], "clicks -1"),
]


@pytest.mark.parametrize("argv, message", BAD_VALUES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_VALUES])
def test_a_bad_setting_is_one_line_before_any_work(tmp_path, capsys, argv, message):
    """The dataclass checks its values, so every command refuses them before reading a file
    (the inputs here do not even exist) or loading a model."""
    from napari_sammed.cli import main

    argv = [a.format(missing=tmp_path / "missing.nii.gz", out=tmp_path / "out") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "missing" not in err[0], err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize("block, message", [
    ("propagation: {min_iou: 2}", "min_iou 2.0: give a number in [0, 1]"),
    ("propagation: {box_margin: .nan}", "box_margin nan"),
    ("samaug: {points_per_side: 0}", "points_per_side 0"),
    ("export: {format: sammed2d, test_fraction: 1.5}", "test_fraction 1.5"),
    ("export: {format: nnunet, dataset_id: 1000}", "dataset_id 1000"),
    ("export: {format: tiff, samaug_channels: true}", "SAMAug channels are an nnU-Net option"),
])
def test_a_plan_fails_on_the_values_the_command_line_fails_on(tmp_path, block, message):
    from napari_sammed.core.jobs.plan import PlanError, load_plan
    from tests.conftest import PACKAGE_DATA

    plan = tmp_path / "plan.yaml"
    plan.write_text(f"steps: [propagate, samaug, export]\n{block}\n"
                    f"cases:\n  - {{name: ct, image: {PACKAGE_DATA / 'example_ct_sm.nii.gz'}, "
                    f"seeds: {PACKAGE_DATA / 'example_seg.nii.gz'}}}\n")
    if not block.startswith("export"):
        plan.write_text(plan.read_text() + "export: {format: tiff}\n")
    with pytest.raises(PlanError, match=re.escape(message)):
        load_plan(plan)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_every_default_but_none_and_false(command):
    """0 is a default worth showing (--seed, --interior-points); None and False say nothing."""
    parser = _subparser(command)
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            continue
        assert "%(default)s" in formatter._get_help_string(action), f"{command} {action.option_strings}"
