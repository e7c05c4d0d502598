"""The first hour on the command line: devices and outputs refused before any work, option names
in messages, help with defaults, ``--version``, a fast ``info``, status lines and honest bars."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import napari_sammed
from napari_sammed.cli import build_parser
from napari_sammed.core.jobs.console import Progress
from napari_sammed.core.model.lite_medsam import bundled_checkpoint
from napari_sammed.core.model.load import check_device
from tests.conftest import PACKAGE_DATA
from tests.hostile.conftest import one_line_error, run

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_ROOT = Path(napari_sammed.__file__).resolve().parents[1]
CT, SEG = PACKAGE_DATA / "example_ct_sm.nii.gz", PACKAGE_DATA / "example_seg.nii.gz"


def cli(*argv, timeout: float = 300) -> subprocess.CompletedProcess:
    """The installed entry point's code, as a user runs it: a subprocess."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "napari_sammed.cli", *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_version_and_help():
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"napari-sammed {napari_sammed.__version__}"
    text = cli("--help").stdout
    assert "examples:" in text and "napari-sammed propagate ct.nii.gz" in text
    assert "Qt-free" not in text and "argument parsing" not in text  # not the module docstring
    propagate = cli("propagate", "--help").stdout
    assert '"objects": {"5": {"15": {"box": [x0, y0, x1, y1]}' in propagate and "(default: 0.5)" in propagate


def test_every_option_has_help():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {action.dest}" for name, sub in subparsers.choices.items() for action in sub._actions
               if not action.help]
    assert not missing, missing


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a CPU-only torch")
@pytest.mark.parametrize("device", ["gpu", "cuda", "cuda:1", "mps"])
def test_unavailable_device_is_one_line_before_any_work(tmp_path, device):
    done = cli("propagate", CT, SEG, tmp_path / "out.nii.gz", "--device", device)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("napari-sammed propagate: error: ") and "available here: auto, cpu" in done.stderr
    with pytest.raises(ValueError, match="available here"):
        check_device(device)
    assert check_device("cpu") == torch.device("cpu") and check_device("auto").type in ("cpu", "cuda", "mps")


@pytest.mark.parametrize("argv, fragment", [
    (["propagate", CT, SEG, "{tmp}/out.png"], "cannot write out.png: use .nii.gz, .nii, .tif, .tiff, .zarr"),
    (["propagate", CT, SEG, "{tmp}/taken.nii.gz"], "exists; pass --overwrite to replace it"),
    (["propagate", CT, SEG, "{tmp}/taken.nii.gz/x.nii.gz"], "is a file, not a folder"),
    (["samaug", CT, "{tmp}/taken.nii.gz"], "is a file; give a folder"),
    (["simulate", CT, SEG, "--csv", "{tmp}"], "is a folder; give a file name"),
    (["export", CT, SEG, "{tmp}/taken.nii.gz", "--format", "nnunet"], "is a file; give a folder"),
    (["batch", "{tmp}/plan.yaml", "{tmp}/taken.nii.gz"], "is a file; give a folder"),
])
def test_outputs_are_checked_before_any_work(tmp_path, argv, fragment):
    (tmp_path / "taken.nii.gz").write_bytes(b"x")
    (tmp_path / "plan.yaml").write_text(f"steps: [propagate]\ncases:\n  - {{name: a, image: {CT}, seeds: {SEG}}}\n")
    started = time.perf_counter()
    done = cli(*[str(a).replace("{tmp}", str(tmp_path)) for a in argv])
    assert done.returncode == 2, done.stderr
    assert "loading model" not in done.stderr and "reading" not in done.stderr  # refused first
    one_line_error(done.stderr, argv[0], fragment)
    assert time.perf_counter() - started < 60


def test_export_hint_names_cli_options(tmp_path, capsys, case_files):
    image, labels = case_files
    args = ["export", image, labels, tmp_path / "out", "--format", "nnunet"]
    assert run(capsys, *args)[0] == 0
    code, _, err = run(capsys, *args, "--case", "other")
    assert code == 2
    one_line_error(err, "export", "pass --append to add case 'other' (or --overwrite)")


def test_info_prints_size_without_building_the_model(monkeypatch, capsys):
    from dataclasses import replace

    from napari_sammed.core.engine import families

    def no_build(*args, **kwargs):
        raise AssertionError("info built the model")

    monkeypatch.setattr(families, "FAMILIES", tuple(replace(f, build=no_build) for f in families.FAMILIES))
    code, out, _ = run(capsys, "info")
    assert code == 0
    info = json.loads(out)
    assert info["size_bytes"] == bundled_checkpoint().stat().st_size and info["size"].endswith("MiB")
    assert info["kind"] == "lite-medsam" and info["parameters"] > 5_000_000 and len(info["checkpoint_sha256"]) == 64


def test_info_of_an_official_checkpoint(small_checkpoint, capsys):
    code, out, _ = run(capsys, "info", "--checkpoint", small_checkpoint)
    info = json.loads(out)
    assert code == 0 and info["kind"] == "sam-med2d" and info["size_bytes"] == small_checkpoint.stat().st_size
    assert info["format"] == "torch-official (inert unpickling)"


def test_progress_rate_starts_at_the_first_report():
    """A bar opened at done=50 (seeds, cached slices) must not count those 50 as done instantly."""
    progress = Progress("test")
    progress(50, 100)
    time.sleep(0.2)
    progress(52, 100)
    rate = progress.bar.format_dict["rate"] or (progress.bar.n - progress.bar.initial) / progress.bar.format_dict["elapsed"]
    progress.close()
    assert rate < 50  # 2 slices in ~0.2 s; the old bar said 52 / 0.2 s = 260 / s


def test_status_lines_and_the_window_used(tmp_path):
    """Every command that windows says which window (and what it is doing) on stderr."""
    model = ["--kind", "weight-free"]
    auto = "window ct-soft-tissue (auto: CT in Hounsfield units): -160..240"
    seeds = tmp_path / "seeds.json"
    seeds.write_text(json.dumps({"objects": {"5": {"15": {"box": [20, 30, 70, 80]}}}}))
    runs = {"propagate": ["propagate", CT, seeds, tmp_path / "p.nii.gz", *model],
            "simulate": ["simulate", CT, SEG, "--classes", "2", "--clicks", "0", *model],
            "export": ["export", CT, SEG, tmp_path / "sam", "--format", "sammed2d"],
            "embed": ["embed", CT, "--cache-dir", tmp_path / "cache", *model]}
    for command, argv in runs.items():
        done = cli(*argv)
        assert done.returncode == 0, done.stderr
        assert f"napari-sammed {command}: {auto}" in done.stderr.splitlines(), (command, done.stderr)
    done = cli("propagate", CT, seeds, tmp_path / "q.nii.gz", "--window", "ct-abdomen", *model)
    assert "napari-sammed propagate: window ct-abdomen: -125..225" in done.stderr.splitlines()
    assert "napari-sammed propagate: loading model" in done.stderr and "napari-sammed propagate: reading" in done.stderr


def test_samaug_progress_advances_per_slice(tmp_path, case_files):
    """One volume: one report per slice as it is done (the bar used to jump to 1/1 at the end)."""
    from napari_sammed.core.engine.families import load_model
    from napari_sammed.core.engine.slice_engine import SliceEngine
    from napari_sammed.core.jobs.samaug import run_samaug

    image, _ = case_files
    calls = []
    run_samaug(image, tmp_path / "maps", SliceEngine(load_model(kind="weight-free")), None,
               progress=lambda done, total: calls.append((done, total)))
    assert calls == [(k, 6) for k in range(1, 7)]
