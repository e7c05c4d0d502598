"""All-or-nothing writes of a dataset folder: stage every file, then move them in, JSON last.

A new dataset is staged in a hidden sibling folder and renamed into place in one step. Adding
to an existing dataset stages inside it, moves the data files in, and the index files (JSON)
last; a file that an overwrite replaces is first set aside, and any failure (an error, Ctrl-C,
SIGTERM) removes what was moved and puts the set-aside files back, so the dataset's index never
names a missing file, an old case survives a failed overwrite, and no half-written file ever
sits under a final name. Every target goes through the dataset path policy
(:func:`~napari_sammed.core.io.paths.inside`): no write lands outside the dataset through a symlink.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..io.atomic import temp_dir
from ..io.inputs import load_json
from ..io.paths import inside

STAGE_PREFIX = ".napari-sammed-stage-"


class Staging:
    """Writes into a hidden folder inside ``root``; :meth:`commit` moves it all in, or nothing."""

    def __init__(self, root: str | Path, replace: bool = False) -> None:
        self.root = Path(root)
        self.replace = replace  # may staged data files replace existing ones (an overwrite)?
        self.exists = self.root.exists()
        parent = self.root if self.exists else self.root.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            # a new dataset is this folder renamed: it gets a folder's normal permissions
            self.dir = temp_dir(parent, prefix=STAGE_PREFIX)
        except OSError as error:
            raise PermissionError(f"cannot write to {parent}: {error.strerror or error}") from None
        self._index: list[str] = []
        self._trees: list[str] = []

    def path(self, relative: str) -> Path:
        """Where to write ``relative`` (a path inside the dataset) while staging."""
        inside(self.root, relative)  # refuse names that would land outside the dataset
        target = self.dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_json(self, relative: str, payload) -> None:
        """An index file: moved in after every data file."""
        self.path(relative).write_text(json.dumps(payload, indent=4) + "\n")
        self._index.append(relative)

    def replace_tree(self, relative: str) -> None:
        """At commit, set the existing folder ``relative`` aside as a whole (a zarr store, a PNG
        stack) instead of merging the staged files into it; it comes back if the commit fails."""
        self._trees.append(relative)

    def commit(self) -> None:
        if not self.exists:
            os.replace(self.dir, self.root)
            return
        staged = [p.relative_to(self.dir).as_posix() for p in sorted(self.dir.rglob("*")) if p.is_file()]
        data = [r for r in staged if r not in self._index]
        order = data + self._index
        targets = {relative: inside(self.root, relative) for relative in order + self._trees}  # before any move
        for relative in data:
            if targets[relative].exists() and not self.replace and not self._in_tree(relative):
                raise FileExistsError(f"{targets[relative]} exists")
        aside = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX + "old-", dir=self.root))
        moved: list[Path] = []
        kept: list[tuple[Path, Path]] = []  # (set-aside copy, original place)
        try:
            for n, relative in enumerate(self._trees):
                if targets[relative].exists() or targets[relative].is_symlink():
                    keep = aside / f"tree{n}"
                    os.replace(targets[relative], keep)
                    kept.append((keep, targets[relative]))
            for n, relative in enumerate(order):
                target = targets[relative]
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists() or target.is_symlink():
                    keep = aside / f"file{n}"
                    os.replace(target, keep)
                    kept.append((keep, target))
                os.replace(self.dir / relative, target)
                moved.append(target)
        except BaseException:
            for target in reversed(moved):
                target.unlink(missing_ok=True)
            for relative in self._trees:
                if targets[relative].is_dir() and not targets[relative].is_symlink():
                    shutil.rmtree(targets[relative], ignore_errors=True)
            for keep, original in reversed(kept):
                os.replace(keep, original)
            raise
        finally:
            shutil.rmtree(aside, ignore_errors=True)
            shutil.rmtree(self.dir, ignore_errors=True)

    def _in_tree(self, relative: str) -> bool:
        return any(relative == t or relative.startswith(t.rstrip("/") + "/") for t in self._trees)

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, kind, _value, _tb) -> None:
        if kind is not None:
            self.abort()


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
