"""Which files of a SAM-Med2D dataset belong to which case.

A case's provenance record lists the files it wrote (``files``, relative to the dataset), so
ownership never follows from how names look: case ``ct_1`` does not own slice 1 of case ``ct``
(``images/ct_1.png``). A case exported before records listed files falls back to its index
entries by name (``images/<case>.png`` or ``images/<case>_<slice>.png`` and those images'
masks), refused where another known case could claim the same entry; files of a dataset that
another tool made belong to no case of ours. A new case name that could
collide with a known case's slice names (``ct`` and ``ct_1``) is refused, and so is writing any
file that is already in the dataset and not the case's own.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError

SLICE = re.compile(r"(.+)_(\d+)")  # a slice's image stem: <case>_<slice>


def check_new_name(dataset: Path, name: str, cases: dict) -> None:
    """Refuse a new case ``name`` whose images could take another case's names: slice n of a
    3D case ``X`` and a 2D case ``X_<n>`` both write ``images/X_<n>.png``."""
    if name in cases:
        return
    match = SLICE.fullmatch(name)
    if match and match[1] in cases:
        clash, base, stem = match[1], match[1], name
    else:
        clash = next((other for other in cases if other.startswith(name + "_") and other[len(name) + 1:].isdigit()), None)
        if clash is None:
            return
        base, stem = name, clash
    raise InputError(dataset, f"case name {name!r} could collide with case {clash!r} already in it: slice "
                              f"{stem[len(base) + 1:]} of a 3D case {base!r} and a 2D case {stem!r} both write "
                              f"images/{stem}.png; choose another case name")


def owned_files(name: str, cases: dict, train: dict, test: dict, prefix: str, source: Path) -> set[str]:
    """The files (relative to the dataset) that case ``name`` owns; ``prefix`` is the index
    entries' ``"<dataset name>/"``, ``source`` the provenance file (for messages)."""
    if name not in cases:
        return set()  # not a case of ours (a dataset made by another tool): it owns nothing here
    files = _files(cases[name])
    return set(files) if files is not None else _by_name(name, cases, train, test, prefix, source)


def _files(record) -> list[str] | None:
    """A provenance record's ``files``; None for a case recorded without them (older exports)."""
    files = record.get("files") if isinstance(record, dict) else None
    return [str(f) for f in files] if isinstance(files, list) else None


def _by_name(name: str, cases: dict, train: dict, test: dict, prefix: str, source: Path) -> set[str]:
    """A case recorded without its files: its index entries by name, as exports used to find
    them, less the files other cases' records list."""
    images = f"{prefix}images/"
    recorded = {f for record in cases.values() for f in _files(record) or ()}
    unrecorded = {c for c, record in cases.items() if c != name and _files(record) is None}
    mine = {k for k in [*train, *test.values()] if _is_case(k, images + name) and k[len(prefix):] not in recorded}
    for entry in mine:
        stem = entry[len(images):-len(".png")]
        match = SLICE.fullmatch(stem)
        rivals = {stem, match[1] if match else stem} & unrecorded
        if rivals:
            raise InputError(source, f"{entry} could be case {name!r}'s or case {min(rivals)!r}'s (both were "
                                     "exported before napari-sammed recorded each case's files); remove one of "
                                     "them from the dataset, or export under another case name")
    files = set(mine)
    files |= {m for k in mine for m in train.get(k, [])} | {m for m, v in test.items() if v in mine}
    return {f[len(prefix):] for f in files}


def _is_case(key: str, image_prefix: str) -> bool:
    """Whether an image key is named as the case's: ``<prefix>.png`` or ``<prefix>_<slice>.png``."""
    if not key.startswith(image_prefix):
        return False
    rest = key[len(image_prefix):-len(".png")]
    return rest == "" or (rest.startswith("_") and rest[1:].isdigit())


def claim(dataset: Path, relative: str, name: str, owned: set[str], listed: set[str], cases: dict) -> None:
    """Refuse to write ``relative`` for case ``name`` when the dataset holds it (listed in its
    index or on disk) and it is not the case's own file."""
    target = dataset / relative
    if relative in owned or not (relative in listed or target.exists() or target.is_symlink()):
        return
    owner = next((c for c, record in cases.items() if relative in (_files(record) or ())), None)
    whose = f"case {owner!r}'s" if owner else f"already in it and not case {name!r}'s"
    raise InputError(dataset, f"case {name!r} would write {relative}, which is {whose}; choose another case name")
