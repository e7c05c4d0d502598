"""Issue 25 item 5: the CLI turns only input errors into one line and exit 2; a ValueError a
library raises inside our code, or one of our own checks that is no InputError, is a bug and
shows its traceback (exit 1)."""

from __future__ import annotations

import errno

import numpy as np
import pytest

import napari_sammed.core.engine.families as families
from napari_sammed.cli import main
from napari_sammed.core.errors import InputError, NeedsOption
from napari_sammed.core.jobs.cluster import ClusterError
from napari_sammed.core.jobs.errors import is_input_error
from napari_sammed.core.jobs.plan import PlanError
from napari_sammed.core.model.checkpoint_scan import CheckpointError


def test_a_library_value_error_is_a_bug_not_bad_input(monkeypatch, capsys):
    monkeypatch.setattr(families, "model_info", lambda *a: np.zeros(4).reshape(3))  # numpy's ValueError
    assert main(["info", "--kind", "weight-free"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" in err


def test_our_input_errors_stay_one_line(monkeypatch, capsys, tmp_path):
    assert main(["embed", str(tmp_path / "missing.nii.gz"), "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and [line for line in err.splitlines() if ": error: " in line] == [err.strip().splitlines()[-1]]


def _broken_invariant(*_args):
    """napari-sammed's own code tripping an internal check (a ValueError raised in one of its
    files, not an InputError): the model's frame asked for with a mode no backend has."""
    from napari_sammed.core.engine.frame import FrameTransform

    return FrameTransform("no-such-mode", 256, (8, 8))


def test_our_own_value_error_is_a_bug_not_bad_input(monkeypatch, capsys):
    monkeypatch.setattr(families, "model_info", _broken_invariant)
    assert main(["info", "--kind", "weight-free"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" in err and "unknown preprocessing mode" in err


def _caught(call) -> BaseException:
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the error itself, with its traceback, is the point
        return error
    raise AssertionError(f"{call} raised nothing")


@pytest.mark.parametrize(("error", "is_input"), [
    (InputError(None, "bad"), True),
    (InputError("a.nii.gz", "bad"), True),
    (ValueError("ours or a library's"), False),
    (_caught(_broken_invariant), False),  # a ValueError raised in a napari-sammed file is no input error
    (_caught(lambda: np.zeros(4).reshape(3)), False),
    (FileNotFoundError(errno.ENOENT, "missing", "a.nii.gz"), True),
    (FileNotFoundError("no errno"), True),
    (OSError(errno.ENOSPC, "full"), True),
    (OSError(errno.ECONNRESET, "reset"), False),
    (OSError("no errno"), False),
    (TypeError("bug"), False),
    (NeedsOption("out.nii.gz exists; pass {overwrite} to replace it"), True),
    (PlanError("plan.yaml: bad"), True),
    (CheckpointError("model.pth: bad"), True),
    (ClusterError("--cluster local:0: bad"), True),
])
def test_is_input_error_goes_by_type(error, is_input):
    assert is_input_error(error) is is_input
