"""Bad input: one line and exit 2. A bug: the traceback, a line asking to report it, exit 1."""

from __future__ import annotations

import napari_sammed.core.export.entry as entry
from tests.hostile.conftest import one_line_error, run


def test_unreadable_inputs_give_one_line(tmp_path, capsys, case_files):
    image, labels = case_files
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00garbage")
    code, _, err = run(capsys, "export", broken, labels, tmp_path / "o", "--format", "tiff")
    assert code == 2
    one_line_error(err, "export", "cannot read TIFF", broken)
    truncated = tmp_path / "trunc.nii.gz"
    truncated.write_bytes(image.read_bytes()[:200])
    code, _, err = run(capsys, "export", truncated, labels, tmp_path / "o", "--format", "tiff")
    assert code == 2
    one_line_error(err, "export", "cannot read NIfTI", truncated)
    code, _, err = run(capsys, "export", tmp_path / "missing.nii.gz", labels, tmp_path / "o", "--format", "tiff")
    assert code == 2
    one_line_error(err, "export", "no such file or folder", tmp_path / "missing.nii.gz")


def test_a_bug_prints_the_traceback_and_asks_for_a_report(tmp_path, capsys, case_files, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(entry, "export_stack", broken)
    image, labels = case_files
    code, _, err = run(capsys, "export", image, labels, tmp_path / "o", "--format", "tiff")
    assert code == 1
    assert "Traceback (most recent call last)" in err and "KeyError: 'internal'" in err
    assert err.strip().splitlines()[-1].startswith("napari-sammed export: internal error (a bug in napari-sammed")
    assert "please report it" in err
