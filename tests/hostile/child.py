"""The CLI in a child process under an address-space limit, so that a memory bomb that gets
through fails the test (MemoryError, or the limit's kill) instead of the machine."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import napari_sammed

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_ROOT = Path(napari_sammed.__file__).resolve().parents[1]  # the code under test, wherever it is
#: Python, numpy and torch map ~1.2 GiB of address space; this leaves ~1.8 GiB for a file.
LIMIT = 3 * 2**30


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child that imports the code under test."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT), str(ROOT)]), "OMP_NUM_THREADS": "1",
            **extra}


def run_limited(*argv, limit: int = LIMIT, timeout: float = 120, code: str | None = None,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``napari-sammed ARGV`` (or ``python -c CODE ARGV``) under ``RLIMIT_AS = limit``."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "napari_sammed.cli"]
    return subprocess.run([*command, *(str(a) for a in argv)], capture_output=True, text=True,
                          env=child_env(**(env or {})), timeout=timeout, preexec_fn=cap)
