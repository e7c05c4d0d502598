"""One path policy for everything read from or written into a dataset folder.

A path that comes from a dataset's own files (a JSON index entry) or that we compose to write
into it must stay inside the dataset: relative, no ``..`` that climbs out, and no symlink on the
way (or at the end) that leads outside. Anything else is refused with an :class:`InputError`
before a byte is read, written or deleted.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import InputError


def inside(root: str | Path, relative: str | os.PathLike, source: str | Path | None = None) -> Path:
    """``root / relative`` if it stays inside ``root`` (symlinks resolved); else InputError.

    ``source`` names the file the path was read from (for the message); default ``root``.
    """
    root = Path(root)
    text = os.fspath(relative)
    where = source if source is not None else root
    if not text or "\x00" in text:
        raise InputError(where, f"empty or invalid path {text!r}")
    _refuse_absolute(text, where)
    base = root.resolve()
    target = (root / text).resolve()
    if target != base and base not in target.parents:
        via = " (through a symlink)" if ".." not in PurePosixPath(text.replace("\\", "/")).parts else ""
        raise InputError(where, f"path {text!r} leads outside {root}{via}")
    return root / text


def _refuse_absolute(text: str, where) -> None:
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() or PureWindowsPath(text).drive:
        raise InputError(where, f"absolute path {text!r}: paths in a dataset must be relative to it")


def dataset_entry(dataset: str | Path, entry: str, source: str | Path) -> Path:
    """A SAM-Med2D index entry (``"<dataset name>/masks/x.png"``, relative to the dataset's
    parent) as a path inside ``dataset``; refuses entries naming another folder."""
    return inside(dataset, _entry_text(entry_prefix(dataset), entry, source), source)


def check_entries(dataset: str | Path, entries: Iterable, source: str | Path) -> None:
    """Refuse any SAM-Med2D index entry that does not name a path inside ``dataset``: its text
    is checked, then the folders the entries go through, with one :func:`inside` (one resolve)
    per distinct folder, not per entry, so that an index of 10^5 entries costs no more file
    system calls than one of ten. A file that is itself a symlink out is refused where it is
    read, written or deleted (:func:`dataset_entry`)."""
    folders: dict[str, str] = {}
    prefix = entry_prefix(dataset)
    for entry in entries:
        text = _entry_text(prefix, entry, source)
        folders.setdefault(posixpath.dirname(text), text)
    for text in folders.values():
        inside(dataset, text, source)


def entry_prefix(dataset: str | Path) -> str:
    """What every SAM-Med2D index entry of ``dataset`` starts with: its folder's name and '/'."""
    return Path(os.path.abspath(dataset)).name + "/"


def _entry_text(prefix: str, entry, source) -> str:
    if isinstance(entry, str) and entry.startswith(prefix) and prefix != "/":  # then not absolute either
        return entry[len(prefix):]
    if isinstance(entry, str):
        _refuse_absolute(entry, source)
    raise InputError(source, f"entry {entry!r} does not start with {prefix!r}: it is not in this dataset")
