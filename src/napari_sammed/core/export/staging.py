"""All-or-nothing writes of a dataset folder: stage every file, then move them in, JSON last.

A new dataset is staged in a hidden sibling folder and renamed into place in one step. Adding
to an existing dataset stages inside it, moves the data files in, and the index files (JSON)
last; any failure removes what was moved, so the dataset's index never names a missing file
and no half-written file ever sits under a final name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path


class Staging:
    def __init__(self, root: str | Path, replace: bool = False) -> None:
        self.root = Path(root)
        self.replace = replace  # may staged data files replace existing ones (an overwrite)?
        self.exists = self.root.exists()
        parent = self.root if self.exists else self.root.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.dir = Path(tempfile.mkdtemp(prefix=".napari-sammed-stage-", dir=parent))
        except OSError as error:
            raise PermissionError(f"cannot write to {parent}: {error.strerror or error}") from None
        self._index: list[str] = []

    def path(self, relative: str) -> Path:
        """Where to write ``relative`` (a path inside the dataset) while staging."""
        target = self.dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_json(self, relative: str, payload) -> None:
        """An index file: moved in after every data file."""
        self.path(relative).write_text(json.dumps(payload, indent=4) + "\n")
        self._index.append(relative)

    def commit(self) -> None:
        if not self.exists:
            os.replace(self.dir, self.root)
            return
        staged = [p.relative_to(self.dir).as_posix() for p in sorted(self.dir.rglob("*")) if p.is_file()]
        data = [r for r in staged if r not in self._index]
        moved: list[Path] = []
        try:
            for relative in data + self._index:
                target = self.root / relative
                if target.exists() and relative not in self._index and not self.replace:
                    raise FileExistsError(f"{target} exists")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.dir / relative, target)
                if relative not in self._index:
                    moved.append(target)
        except BaseException:
            for target in moved:
                target.unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, kind, _value, _tb) -> None:
        if kind is not None:
            self.abort()


def read_json(path: Path, default):
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); fix or remove it before exporting into this dataset") from None
