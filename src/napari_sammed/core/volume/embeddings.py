"""Volumes as stacks of slices along an axis, and embedding them (with a cache) for an engine."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..engine.slice_engine import SliceEngine
from ..errors import InputError
from ..io.hashing import data_hash, json_hash
from ..io.windowing import Window, apply_window
from .cache import DEFAULT_BUDGET_BYTES, CacheCorruptError, EmbeddingCache, prune

AXES = {"z": 0, "y": 1, "x": 2}


def axis_index(axis: str | int) -> int:
    """``z``/``y``/``x`` (or 0/1/2) -> the array axis."""
    if isinstance(axis, int):
        if axis not in (0, 1, 2):
            raise InputError(None, f"axis must be 0, 1 or 2, got {axis}")
        return axis
    if axis not in AXES:
        raise InputError(None, f"axis must be one of z, y, x; got {axis!r}")
    return AXES[axis]


def get_slice(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """Slice ``index`` of ``volume`` along ``axis``."""
    return np.take(volume, index, axis=axis)


class VolumeEmbeddings:
    """Embeddings of every slice of a 3D volume along one axis, computed lazily and cached.

    ``volume`` is (Z, Y, X) of any dtype; slices are windowed with ``window`` before embedding.
    With ``cache_dir`` the embeddings persist in a zarr store reused on reopen (one store per
    window and model, the folder kept within ``cache_budget`` bytes), and ``memory_slices``
    bounds how many stay in memory too (older ones are read back from disk).
    """

    def __init__(
        self,
        engine: SliceEngine,
        volume: np.ndarray,
        window: Window | None,
        axis: str | int = "z",
        cache_dir: str | Path | None = None,
        storage_dtype: str = "float32",
        memory_slices: int | None = None,
        cache_budget: int = DEFAULT_BUDGET_BYTES,
    ) -> None:
        if volume.ndim != 3:
            raise InputError(None, f"expected a 3D volume, got shape {volume.shape}")
        self.engine, self.volume, self.window = engine, volume, window
        self.axis = axis_index(axis)
        self.n_slices = volume.shape[self.axis]
        self.slice_shape = tuple(s for i, s in enumerate(volume.shape) if i != self.axis)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        bounded = memory_slices is not None and self.cache_dir is not None
        self._memory: dict[int, torch.Tensor] = _Recent(memory_slices) if bounded else {}
        self.storage_dtype = storage_dtype
        self.cache_budget = cache_budget
        self._cache: EmbeddingCache | None = None
        self._data_sha256: str | None = None

    @property
    def data_sha256(self) -> str:
        """The volume's content hash, computed once (the cache's name; a batch case's exports reuse it)."""
        if self._data_sha256 is None:
            self._data_sha256 = data_hash(self.volume)
        return self._data_sha256

    @property
    def cache(self) -> EmbeddingCache | None:
        """The on-disk store, opened on first use: naming it hashes the whole volume, which
        belongs in a worker, not in the constructor a GUI calls."""
        if self._cache is None and self.cache_dir is not None:
            signature = {
                "data_sha256": self.data_sha256,
                "axis": "zyx"[self.axis],
                "window": None if self.window is None else self.window.as_dict(),
                "engine": {k: v for k, v in self.engine.describe().items()
                           if k in ("kind", "checkpoint_sha256", "dtype")},
            }
            tag = json_hash([signature["window"], signature["engine"], self.storage_dtype])[:10]  # per window
            name = f"{signature['data_sha256'][:16]}_{signature['axis']}_{self.engine.kind}_{tag}.zarr"
            self._cache = EmbeddingCache.open(
                self.cache_dir / name, signature, (self.n_slices, *self.engine.embedding_shape), self.storage_dtype
            )
            prune(self.cache_dir, self.cache_budget, keep=self._cache.path)
        return self._cache

    def slice_uint8(self, index: int) -> np.ndarray:
        return apply_window(get_slice(self.volume, self.axis, index), self.window)

    def is_embedded(self, index: int) -> bool:
        """In memory, or in an already opened cache (this never opens the cache)."""
        return index in self._memory or (self._cache is not None and bool(self._cache.done[index]))

    def missing(self, indices) -> list[int]:
        """Which of ``indices`` still need the encoder (opens the cache: call it off the GUI thread)."""
        cache = self.cache
        return [i for i in indices if i not in self._memory and not (cache is not None and cache.done[i])]

    def get(self, index: int) -> torch.Tensor:
        """Embedding of slice ``index`` (C, G, G), computing it if needed."""
        if index not in self._memory:
            if self.cache is not None and self.cache.done[index]:
                try:
                    self._memory[index] = torch.from_numpy(self.cache.read(index))
                except CacheCorruptError:  # a damaged chunk: embed the slice again, rewrite it
                    self.cache.done[index] = False
                    self.compute([index])
            else:
                self.compute([index])
        return self._memory[index]

    def compute(
        self,
        indices: list[int] | None = None,
        batch_size: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> int:
        """Embed the given (default: all not yet embedded) slices; returns how many were done.

        Stops cleanly between batches when ``should_stop()`` is true: finished slices stay valid.
        """
        if indices is None:
            indices = self.missing(range(self.n_slices))
        step = batch_size or self.engine.batch_size
        done = 0
        for start in range(0, len(indices), step):
            if should_stop is not None and should_stop():
                break
            chunk = indices[start : start + step]
            batch = np.stack([self.slice_uint8(i) for i in chunk])
            emb = self.engine.embed(batch, batch_size=step).cpu()
            for i, e in zip(chunk, emb, strict=True):
                self._memory[i] = e
                if self.cache is not None:
                    self.cache.write(i, e.numpy())
            done += len(chunk)
            if progress is not None:
                progress(done, len(indices))
        return done


class _Recent(OrderedDict):
    """A dict that keeps only the ``limit`` most recently stored entries."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = max(1, int(limit))

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)
