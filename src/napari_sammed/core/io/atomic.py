"""Write files so that a failure never leaves a half-written file in place of a good one.

Temporary files and folders are made beside their target and renamed into place. ``tempfile``
creates them private (0600 / 0700); they get the permissions any other tool's output gets
(0666 / 0777 less the umask) before they take their final name, so colleagues can read results.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it where Linux's /proc tells it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return _UMASK_AT_START  # elsewhere: setting and restoring it would race other threads


def _read_umask() -> int:
    mask = os.umask(0o022)  # at import, before any worker thread: set and restore
    os.umask(mask)
    return mask


_UMASK_AT_START = _read_umask()


def normal_mode(directory: bool = False) -> int:
    """The mode ``open``/``mkdir`` would give a new file (or folder) under the current umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def temp_file(folder: str | os.PathLike, suffix: str = "", prefix: str = ".napari-sammed-") -> Path:
    """An empty temporary file in ``folder`` with normal permissions (mkstemp makes it 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    os.chmod(tmp, normal_mode())  # os.fchmod is missing on Windows before Python 3.13
    return Path(tmp)


def temp_dir(folder: str | os.PathLike, suffix: str = "", prefix: str = ".napari-sammed-") -> Path:
    """A temporary folder in ``folder`` with normal permissions (mkdtemp makes it 0700)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=folder))
    os.chmod(tmp, normal_mode(directory=True))
    return tmp


def atomic_write(target: str | os.PathLike, write: Callable[[str], object], prefix: str = ".napari-sammed-") -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``target``, then rename it into place.

    The temporary file keeps all of ``target``'s suffixes (``.nii.gz`` tells nibabel to
    compress) and is removed if ``write`` fails.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(temp_file(target.parent, "".join(target.suffixes), prefix))
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
