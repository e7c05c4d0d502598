"""Issue 25 item 5: the CLI turns only input errors into one line and exit 2; a ValueError a
library raises inside our code is a bug and shows its traceback (exit 1)."""

from __future__ import annotations

import numpy as np

import napari_sammed.core.engine.families as families
from napari_sammed.cli import main


def test_a_library_value_error_is_a_bug_not_bad_input(monkeypatch, capsys):
    monkeypatch.setattr(families, "model_info", lambda *a: np.zeros(4).reshape(3))  # numpy's ValueError
    assert main(["info", "--kind", "weight-free"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" in err


def test_our_input_errors_stay_one_line(monkeypatch, capsys, tmp_path):
    assert main(["embed", str(tmp_path / "missing.nii.gz"), "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and [line for line in err.splitlines() if ": error: " in line] == [err.strip().splitlines()[-1]]
