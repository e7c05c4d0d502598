"""Outputs get the umask's permissions (files 0666 & ~umask, folders 0777 & ~umask), like any
other tool's, not the private 0600/0700 of the temporary files they are written through."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import napari_sammed

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_ROOT = Path(napari_sammed.__file__).resolve().parents[1]

# The CLI run once per argv in one child process (one torch import), exit codes printed.
CHILD = textwrap.dedent("""
    import json, sys
    from napari_sammed.cli import main
    print(json.dumps([main(argv) for argv in json.loads(sys.argv[1])]))
""")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_get_the_umask_permissions(tmp_path, case_files, umask):
    import json

    image, labels = case_files
    out = tmp_path / "out"
    model = ["--kind", "weight-free"]
    commands = [
        ["propagate", image, labels, out / "prop.nii.gz", *model],
        ["propagate", image, labels, out / "prop2.zarr", *model],  # prop_qc.csv is prop.nii.gz's
        ["samaug", image, out / "samaug", *model],
        ["export", image, labels, out / "nnunet", "--format", "nnunet"],
        ["export", image, labels, out / "sammed2d", "--format", "sammed2d"],
        ["simulate", image, labels, "--clicks", "1", "--csv", out / "sim.csv", *model],
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    out.mkdir(mode=0o777)
    os.chmod(out, 0o777 & ~umask)
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps([[str(a) for a in c] for c in commands])],
                           env=env, capture_output=True, text=True, timeout=300,
                           preexec_fn=lambda: os.umask(umask))
    assert child.returncode == 0 and json.loads(child.stdout.splitlines()[-1]) == [0] * len(commands), child.stderr
    made = sorted(out.rglob("*"))
    assert any(p.name.endswith("_seg_prior.tif") for p in made) and (out / "prop2.zarr").is_dir()
    assert any(p.name.startswith("Dataset") for p in (out / "nnunet").iterdir())
    wrong = [f"{p.relative_to(out)} {oct(stat.S_IMODE(p.stat().st_mode))}" for p in made
             if stat.S_IMODE(p.stat().st_mode) != (0o777 if p.is_dir() else 0o666) & ~umask]
    assert not wrong, wrong
