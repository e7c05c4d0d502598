"""One writer per dataset: an OS file lock that ends with the process holding it.

Every export into a folder holds ``<folder>/.napari-sammed-lock`` (``flock``; ``msvcrt`` on
Windows) from reading the folder's index to its last rename. The kernel releases the lock
when its process ends, however it ends (``kill -9`` included), so a crash never leaves a
folder locked. The holder removes the file when it is done: a folder at rest has no lock file.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

log = logging.getLogger(__name__)

LOCK_NAME = ".napari-sammed-lock"
WAIT_S = 300.0  # how long an export waits for another one writing the same folder


@contextmanager
def dataset_lock(folder: str | Path, wait_s: float | None = None) -> Iterator[bool]:
    """Hold ``folder``'s lock inside the block, the folder made first if missing; yields whether
    this call made it. Waits up to ``wait_s`` (default :data:`WAIT_S`) for another export."""
    folder = Path(folder)
    deadline = time.monotonic() + (WAIT_S if wait_s is None else wait_s)
    told = False
    while True:
        fd, created = _open(folder)
        if _try_lock(fd) and _same_file(fd, folder / LOCK_NAME):
            break
        os.close(fd)  # held by another export, or removed by its holder as we opened it
        if time.monotonic() > deadline:
            raise InputError(folder, "another export is writing to this folder (waited "
                                     f"{WAIT_S if wait_s is None else wait_s:g} s); try again when it has finished")
        if not told:
            log.info(f"waiting for another export to finish writing {folder}")
            told = True
        time.sleep(0.1)
    try:
        yield created
    finally:
        try:  # while still holding it: whoever opens the name next gets a new file (see _same_file)
            os.unlink(folder / LOCK_NAME)
        except OSError:  # removed with a folder that the failed export made, or Windows
            pass
        os.close(fd)


def _open(folder: Path, tries: int = 5) -> tuple[int, bool]:
    created = False
    try:
        folder.mkdir(parents=True)
        created = True
    except FileExistsError:
        pass
    except OSError as error:
        raise PermissionError(f"cannot write to {folder}: {error.strerror or error}") from None
    try:
        return os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666), created
    except FileNotFoundError:  # a failed export removed the folder it had made: make it again
        if tries > 1:
            return _open(folder, tries - 1)
        raise PermissionError(f"cannot write to {folder}: no such folder") from None
    except OSError as error:
        raise PermissionError(f"cannot write to {folder}: {error.strerror or error}") from None


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file named ``path``: a lock taken on a file that its previous
    holder removed meanwhile protects nothing."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
