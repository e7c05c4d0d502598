"""Zarr v3 store of slice embeddings, keyed by a signature, resumable and checksummed.

One store per (volume, axis, window, model). ``embeddings`` is chunked one slice per chunk;
``done`` marks a slice only after its chunk and checksum are written, so an interrupted run
leaves nothing that is later trusted. The signature (data hash, model kind, checkpoint sha256,
window, dtype, axis) lives in the group attributes; a store whose signature differs is rebuilt.
Stores of other windows stay (going back to a window costs nothing); :func:`prune` keeps the
folder within a size budget by dropping the least recently used stores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import zlib
from pathlib import Path

import numpy as np
import zarr

FORMAT_VERSION = 1
#: Default size of an embedding cache folder: a 300-slice CT costs ~1.2 GB with LiteMedSAM
#: (4 MiB a slice) and 75 MB with SAM-Med2D (256 KiB), so ~16 / ~260 volume-windows.
DEFAULT_BUDGET_BYTES = 20 * 2**30
#: A store written to this recently may be in use by another process: prune leaves it.
IN_USE_SECONDS = 15 * 60
#: Names of the stores VolumeEmbeddings makes: <data sha256[:16]>_<axis>_<kind>_<settings tag>.zarr.
STORE_NAME = re.compile(r"[0-9a-f]{16}_[zyx]_[A-Za-z0-9.-]+_[0-9a-f]{10}\.zarr")


class CacheCorruptError(RuntimeError):
    """A stored slice no longer matches its checksum."""


def _checksum(values: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(values).tobytes())


class EmbeddingCache:
    """Embeddings (N, C, G, G) of the N slices of one volume along one axis."""

    def __init__(self, group: zarr.Group, path: Path) -> None:
        self.group = group
        self.path = path
        self.embeddings = group["embeddings"]
        self.done = group["done"]
        self.checksums = group["checksums"]

    @classmethod
    def open(
        cls,
        path: str | Path,
        signature: dict,
        shape: tuple[int, int, int, int],
        dtype: str = "float32",
    ) -> EmbeddingCache:
        """Open the store at ``path``, reusing it if its signature matches, else (re)creating it."""
        path = Path(path)
        wanted = {**signature, "shape": list(shape), "storage_dtype": dtype, "format": FORMAT_VERSION}
        wanted = json.loads(json.dumps(wanted))  # normalise tuples etc. as stored attributes are
        if path.exists():
            try:
                group = zarr.open_group(str(path), mode="r+")
                if dict(group.attrs).get("signature") == wanted:
                    cache = cls(group, path)
                    cache.check(shape)
                    os.utime(path)  # last used: what prune() keeps longest
                    return cache
            except Exception:  # noqa: BLE001 - unreadable or damaged store: rebuild it below
                pass
            shutil.rmtree(path)
        group = zarr.open_group(str(path), mode="w")
        n, c, gh, gw = shape
        group.create_array("embeddings", shape=shape, chunks=(1, c, gh, gw), dtype=dtype, fill_value=0)
        group.create_array("done", shape=(n,), chunks=(n,), dtype="bool", fill_value=False)
        group.create_array("checksums", shape=(n,), chunks=(n,), dtype="uint32", fill_value=0)
        group.attrs["signature"] = wanted
        return cls(group, path)

    def check(self, shape: tuple[int, ...]) -> None:
        """Raise unless the arrays have ``shape``'s sizes and the done marks and checksums can be
        read (a damaged chunk of either would otherwise fail every later run)."""
        n = shape[0]
        if (tuple(self.embeddings.shape) != tuple(shape) or tuple(self.done.shape) != (n,)
                or tuple(self.checksums.shape) != (n,)):
            raise CacheCorruptError(f"{self.path}: arrays do not have the recorded shape")
        self.done_mask()
        np.asarray(self.checksums[:])

    @property
    def signature(self) -> dict:
        return dict(self.group.attrs["signature"])

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def done_mask(self) -> np.ndarray:
        return np.asarray(self.done[:], dtype=bool)

    def missing(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(~self.done_mask())]

    def is_complete(self) -> bool:
        return bool(self.done_mask().all())

    def write(self, index: int, embedding: np.ndarray) -> None:
        """Store slice ``index``; it counts as done only once data and checksum are written."""
        values = np.asarray(embedding, dtype=self.embeddings.dtype)
        self.embeddings[index] = values
        self.checksums[index] = _checksum(values)
        self.done[index] = True
        os.utime(self.path)  # in use: another process's prune() leaves it alone

    def read(self, index: int) -> np.ndarray:
        """Slice ``index`` as float32 (C, G, G); raises if missing or corrupt."""
        if not self.done[index]:
            raise KeyError(f"slice {index} is not in the cache yet")
        try:
            values = np.asarray(self.embeddings[index])
        except Exception as error:  # noqa: BLE001 - a damaged chunk fails to decode in many ways
            raise CacheCorruptError(f"cached embedding of slice {index} cannot be read ({self.path}): "
                                    f"{type(error).__name__}") from None
        if _checksum(values) != int(self.checksums[index]):
            raise CacheCorruptError(f"cached embedding of slice {index} is corrupt ({self.path})")
        return values.astype(np.float32)

    def verify(self) -> list[int]:
        """Indices of done slices whose data no longer matches; they are marked not done."""
        bad = []
        for i in np.flatnonzero(self.done_mask()):
            try:
                self.read(int(i))
            except (CacheCorruptError, ValueError, OSError):  # read() wraps decode errors
                bad.append(int(i))
                self.done[int(i)] = False
        return bad

    @property
    def bytes_per_slice(self) -> int:
        return int(np.prod(self.embeddings.shape[1:])) * self.embeddings.dtype.itemsize


def _size(path: Path) -> int:
    total = 0
    for entry in path.rglob("*"):
        try:
            total += entry.stat().st_size if entry.is_file() else 0
        except OSError:  # removed while we looked (another process's prune or zarr's renames)
            pass
    return total


def _last_used(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def is_store(path: Path) -> bool:
    """Whether ``path`` is an embedding store this module made (and so may be pruned)."""
    if not (path.is_dir() and STORE_NAME.fullmatch(path.name)):
        return False
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta.get("attributes", {}).get("signature"), dict)


def prune(folder: str | Path, budget_bytes: int = DEFAULT_BUDGET_BYTES, keep: Path | None = None) -> list[Path]:
    """Delete the least recently used embedding stores in ``folder`` until it fits ``budget_bytes``.

    Only stores this module made are counted or deleted (a cache folder may hold a user's own
    zarr volumes); ``keep`` and stores written to in the last :data:`IN_USE_SECONDS` (perhaps by
    another process) are never deleted. Returns the stores removed.
    """
    stores = {p: _last_used(p) for p in Path(folder).glob("*.zarr") if is_store(p)}
    stores = {p: used for p, used in stores.items() if used is not None}
    sizes = {p: _size(p) for p in stores}
    total, removed = sum(sizes.values()), []
    recent = time.time() - IN_USE_SECONDS
    for store in sorted(stores, key=stores.get):
        if total <= budget_bytes:
            break
        if stores[store] > recent or (keep is not None and store.resolve() == Path(keep).resolve()):
            continue
        shutil.rmtree(store, ignore_errors=True)
        total -= sizes[store]
        removed.append(store)
    return removed
