"""Embedding cache of a volume (what ``napari-sammed embed`` runs): compute it, or resume it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..io.read import Volume, read_volume
from ..io.windowing import describe_window, resolve_window
from ..volume.embeddings import VolumeEmbeddings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedReport:
    """What an embed run did: slices reused from the cache, embedded now, corrupt ones redone."""

    n_slices: int
    embedded: int
    corrupt: list[int]
    cache: Path

    def summary(self) -> str:
        note = (f" ({len(self.corrupt)} corrupt cached slices recomputed: {', '.join(map(str, self.corrupt))})"
                if self.corrupt else "")
        return f"{self.n_slices - self.embedded} slices reused, {self.embedded} embedded -> {self.cache}{note}"


def check_volume(volume: Volume, image: str | Path) -> None:
    """Refuse anything but a 3D volume (before a model is loaded for it)."""
    if volume.data.ndim != 3:
        raise InputError(image, f"embed needs a 3D volume, got shape {volume.data.shape}")


def embed_volume(embeddings: VolumeEmbeddings, progress: Callable[[int, int], None] | None = None) -> EmbedReport:
    """Fill ``embeddings``' on-disk cache; damaged chunks are marked not done, so they are embedded again."""
    corrupt = embeddings.cache.verify()
    todo = embeddings.missing(range(embeddings.n_slices))
    log.info(f"embedding {len(todo)} of {embeddings.n_slices} slices")
    embeddings.compute(todo, progress=progress)
    return EmbedReport(embeddings.n_slices, len(todo), list(corrupt), embeddings.cache.path)


def embed_file(image: str | Path, engine, cache_dir: str | Path, window=None, axis: str = "z",
               storage_dtype: str = "float32", progress: Callable[[int, int], None] | None = None,
               volume: Volume | None = None) -> EmbedReport:
    """:func:`embed_volume` for a volume file (or its already opened ``volume``)."""
    if volume is None:
        log.info(f"reading {image}")
        volume = read_volume(image)
    check_volume(volume, image)
    resolved = resolve_window(volume.data, window)
    log.info(describe_window(resolved))
    store = VolumeEmbeddings(engine, volume.data, resolved, axis, cache_dir=cache_dir, storage_dtype=storage_dtype)
    return embed_volume(store, progress)
