"""SIGTERM in the middle of an export: staging removed, the dataset exactly as before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import napari_sammed
from tests.hostile.conftest import run, snapshot

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_ROOT = Path(napari_sammed.__file__).resolve().parents[1]  # the code under test, wherever it is

# The CLI, with Staging.commit made to wait (after every file is staged) so the signal
# reliably lands while the export is in flight; the handler under test is the CLI's own.
CHILD = textwrap.dedent("""
    import pathlib, sys, time
    from napari_sammed.core.export import staging
    commit = staging.Staging.commit
    def slow_commit(self):
        pathlib.Path(sys.argv[1]).write_text(str(self.dir))
        time.sleep(60)
        commit(self)
    staging.Staging.commit = slow_commit
    from napari_sammed.cli import main
    sys.exit(main(sys.argv[2:]))
""")


@pytest.mark.parametrize("fmt", ["sammed2d", "nnunet"])
def test_sigterm_during_export_cleans_staging(tmp_path, capsys, case_files, fmt):
    image, labels = case_files
    target = tmp_path / "out"
    base = ["export", str(image), str(labels), str(target), "--format", fmt, "--dataset-id", "4"]
    assert run(capsys, *base, "--case", "a")[0] == 0
    before = snapshot(tmp_path)
    marker = tmp_path.parent / f"{tmp_path.name}-staged"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(marker), *base, "--case", "b", "--append"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the export never reached its commit"
            time.sleep(0.05)
        stage = Path(marker.read_text())
        assert stage.is_dir() and any(stage.rglob("*.*"))  # files were staged
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signal.SIGTERM
    lines = err.strip().splitlines()  # status lines (reading ..., window ...), then the one error line
    assert lines[-1] == "napari-sammed export: error: terminated (SIGTERM); unfinished output was removed"
    assert all(": error:" not in line and "Traceback" not in line for line in lines[:-1]), err
    assert not stage.exists()
    assert not list(tmp_path.rglob(".napari-sammed-*"))
    assert snapshot(tmp_path) == before  # case a intact and listed; nothing of case b
