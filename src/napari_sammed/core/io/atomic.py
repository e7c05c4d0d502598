"""Write files so that a failure never leaves a half-written file in place of a good one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(target: str | os.PathLike, write: Callable[[str], object], prefix: str = ".napari-sammed-") -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``target``, then rename it into place.

    The temporary file keeps all of ``target``'s suffixes (``.nii.gz`` tells nibabel to
    compress) and is removed if ``write`` fails.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix="".join(target.suffixes), dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
