"""All-or-nothing, crash-safe writes of a dataset folder: stage every file, then move it all in
under a journal, the index files last.

An export writes its files into a hidden folder inside the dataset (:class:`Staging`). Its
:meth:`~Staging.commit` writes a journal naming every move, renames the data files into place,
then the index files (JSON), then deletes what an overwrite left stale. A file being replaced
is first hard-linked aside and a rename replaces a file in one step, so at every instant the
index names only files that exist. A failure (an error, Ctrl-C, SIGTERM, SIGHUP) undoes the
moves at once from the journal; an export killed outright (``kill -9``) leaves the journal,
and the next export into the folder, holding its lock (:func:`writing`), undoes that commit
(or finishes it, when its index files were all in place) before reading anything, and removes
the staging of exports that died. This covers processes that die, not a machine that loses
power (nothing is fsynced). Every target goes through the dataset path policy
(:func:`~napari_sammed.core.io.paths.inside`): no write lands outside it through a symlink.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, field_validator

from ..errors import InputError
from ..io.atomic import temp_dir, temp_file
from ..io.inputs import load_json
from ..io.paths import inside
from .lock import dataset_lock

log = logging.getLogger(__name__)

STAGE_PREFIX = ".napari-sammed-stage-"  # staging, set-aside copies, journal drafts: all removable
JOURNAL = ".napari-sammed-journal.json"
OURS = ".napari-sammed"  # what every hidden entry of ours starts with (the lock file included)


@contextmanager
def writing(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder``'s lock (the folder made if missing), finish or undo a commit that a killed
    export left in it, remove dead exports' staging, and yield it. A folder this call made is
    removed again if the export fails before anything of it is in place."""
    folder = Path(folder)
    with dataset_lock(folder) as created:
        try:
            recover(folder)
            yield folder
        except BaseException:
            if created and not any(p.is_file() and not p.relative_to(folder).parts[0].startswith(OURS)
                                   for p in folder.rglob("*")):
                shutil.rmtree(folder, ignore_errors=True)
            raise


class Staging:
    """Writes into a hidden folder inside ``root``; :meth:`commit` moves it all in, or nothing."""

    def __init__(self, root: str | Path, replace: bool = False) -> None:
        self.root = Path(root)  # exists: made by writing()
        self.replace = replace  # may staged data files replace existing ones (an overwrite)?
        try:
            self.dir = temp_dir(self.root, prefix=STAGE_PREFIX)
        except OSError as error:
            raise PermissionError(f"cannot write to {self.root}: {error.strerror or error}") from None
        self._index: list[str] = []
        self._trees: list[str] = []
        self._stale: list[str] = []

    def path(self, relative: str) -> Path:
        """Where to write ``relative`` (a path inside the dataset) while staging."""
        inside(self.root, relative)  # refuse names that would land outside the dataset
        target = self.dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_json(self, relative: str, payload) -> None:
        """An index file: moved in after every data file."""
        self.path(relative).write_text(json.dumps(payload, indent=4) + "\n")
        self.index(relative)

    def index(self, relative: str) -> None:
        """Move the staged file ``relative`` after every data file, in the order of these calls."""
        if relative not in self._index:
            self._index.append(relative)

    def replace_tree(self, relative: str) -> None:
        """At commit, set the existing folder ``relative`` aside as a whole (a zarr store, a PNG
        stack) and move the staged one in its place; the old one comes back if the commit fails."""
        self._trees.append(relative)

    def remove(self, relatives) -> None:
        """Files to delete once the new index is in place (an overwritten case's files that the
        new export does not write again)."""
        self._stale += [r for r in relatives if r not in self._stale]

    def commit(self) -> None:
        trees = [t for t in dict.fromkeys(self._trees) if (self.dir / t).is_dir()]
        staged = [p.relative_to(self.dir).as_posix() for p in sorted(self.dir.rglob("*")) if p.is_file()]
        staged = [r for r in staged if not self._in_tree(r, trees)]
        order = [r for r in staged if r not in self._index] + [r for r in self._index if r in staged]
        targets = {relative: inside(self.root, relative) for relative in trees + order + self._stale}  # before any move
        existed = {relative: targets[relative].exists() or targets[relative].is_symlink() for relative in trees + order}
        for relative in order:
            if existed[relative] and not self.replace and relative not in self._index:
                raise FileExistsError(f"{targets[relative]} exists")
        new_dirs = {d.as_posix() for r in trees + order for d in PurePosixPath(r).parents
                    if d.as_posix() != "." and not (self.root / d).exists()}
        aside = temp_dir(self.root, prefix=STAGE_PREFIX + "old-")
        journal = {"stage": self.dir.name, "aside": aside.name, "state": "moving",
                   "trees": [[t, existed[t]] for t in trees], "files": [[r, existed[r]] for r in order],
                   "stale": list(self._stale), "dirs": sorted(new_dirs, key=len, reverse=True)}
        try:
            _write_journal(self.root, journal)
            for n, (relative, was) in enumerate(journal["trees"]):
                if was:
                    os.replace(targets[relative], aside / f"t{n}")
                os.replace(self.dir / relative, targets[relative])
            for n, (relative, was) in enumerate(journal["files"]):
                targets[relative].parent.mkdir(parents=True, exist_ok=True)
                if was:
                    _keep(targets[relative], aside / f"f{n}")
                os.replace(self.dir / relative, targets[relative])
            journal["state"] = "done"
            _write_journal(self.root, journal)  # the commit point
        except BaseException:
            journal["state"] = "moving"
            _undo(self.root, journal)
            _finish(self.root, journal)
            raise
        try:
            _finish(self.root, journal)
        except OSError as error:  # committed; the next export into the folder finishes the cleanup
            log.warning(f"{self.root}: could not remove stale files yet ({error})")

    @staticmethod
    def _in_tree(relative: str, trees: list[str]) -> bool:
        return any(relative == t or relative.startswith(t.rstrip("/") + "/") for t in trees)

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, kind, _value, _tb) -> None:
        if kind is not None:
            self.abort()


class Journal(BaseModel):
    """``.napari-sammed-journal.json``: the moves of a commit in progress, as :meth:`Staging.commit` writes them."""

    stage: str
    aside: str
    state: Literal["moving", "done"]
    trees: list[tuple[str, bool]]  # (path in the dataset, whether it existed before)
    files: list[tuple[str, bool]]
    stale: list[str]
    dirs: list[str] = []  # folders the moves make, deepest first

    @field_validator("stage", "aside")
    @classmethod
    def _ours(cls, name: str) -> str:
        if not name.startswith(STAGE_PREFIX) or "/" in name or "\\" in name:
            raise ValueError(f"{name!r} is not a staging folder of napari-sammed")
        return name


def recover(root: str | Path) -> None:
    """Undo (or finish) the commit whose journal a killed export left in ``root``, then remove
    every staging entry there; call it holding the folder's lock, as :func:`writing` does."""
    root = Path(root)
    path = root / JOURNAL
    if path.exists():
        journal = load_json(path, Journal, "journal of an interrupted export").model_dump()
        named = [r for r, _ in journal["trees"] + journal["files"]] + journal["stale"] + journal["dirs"]
        for relative in named:
            if not PurePosixPath(relative).parts or ".." in PurePosixPath(relative).parts:
                raise InputError(path, f"path {relative!r} is not a file in {root}")
            inside(root, relative, path)
        if journal["state"] == "done":
            log.info(f"finishing the export that was interrupted in {root}")
        else:
            log.info(f"undoing the export that was interrupted in {root}")
            _undo(root, journal)
        _finish(root, journal)
    for entry in root.iterdir():  # under the lock, staging of any other export is a dead one's
        if entry.name.startswith(STAGE_PREFIX):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _undo(root: Path, journal: dict) -> None:
    """Put back what the moves replaced and remove what they added, last move first. Safe to
    run again after being interrupted: a staged file that is gone was moved (or the staging was
    removed), an aside copy that is gone was restored."""
    stage, aside = root / journal["stage"], root / journal["aside"]
    for n, (relative, existed) in reversed(list(enumerate(journal["files"]))):
        target, keep = root / relative, aside / f"f{n}"
        if (stage / relative).exists():
            continue  # never moved
        if existed:
            if keep.exists() or keep.is_symlink():
                os.replace(keep, target)  # the old file back, in one step
        else:
            target.unlink(missing_ok=True)
    for n, (relative, existed) in reversed(list(enumerate(journal["trees"]))):
        target, keep = root / relative, aside / f"t{n}"
        if not (stage / relative).exists() and (keep.exists() or not existed):
            _remove(target)  # the new tree
        if keep.exists() or keep.is_symlink():
            os.replace(keep, target)
    for relative in journal["dirs"]:  # left empty: a first export that failed leaves no folders
        try:
            os.rmdir(root / relative)
        except OSError:
            pass


def _finish(root: Path, journal: dict) -> None:
    """After the commit point: delete the stale files. Always: the staging, the set-aside
    copies and the journal (last, so that an interrupted clean-up is done again)."""
    if journal["state"] == "done":
        for relative in journal["stale"]:
            (root / relative).unlink(missing_ok=True)
    for name in (journal["aside"], journal["stage"]):
        shutil.rmtree(root / name, ignore_errors=True)
    (root / JOURNAL).unlink(missing_ok=True)


def _keep(target: Path, keep: Path) -> None:
    """A copy of ``target`` at ``keep`` that survives ``target`` being replaced: a hard link
    (instant, no space), or a copy where the file system has none."""
    try:
        os.link(target, keep, follow_symlinks=False)
    except (OSError, NotImplementedError):  # no hard links here (FAT, some shares), or no linkat
        shutil.copy2(target, keep, follow_symlinks=False)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _write_journal(root: Path, journal: dict) -> None:
    draft = temp_file(root, ".json", prefix=STAGE_PREFIX + "journal-")
    try:
        draft.write_text(json.dumps(journal))
        os.replace(draft, root / JOURNAL)
    finally:
        draft.unlink(missing_ok=True)


def read_json(path: Path, default, schema=None):
    """An index file of the dataset that holds ``path``: ``default`` when absent, else validated
    against ``schema``; a symlink leading out of the dataset is refused."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return default
    inside(path.parent, path.name)
    if schema is None:
        from typing import Any

        schema = Any
    result = load_json(path, schema)
    return result.model_dump() if hasattr(result, "model_dump") else result
