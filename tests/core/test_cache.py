"""Embedding cache: reuse, invalidation, resume after interruption, corruption detection."""

import os

import numpy as np
import pytest
import torch

import napari_sammed as ns
from napari_sammed.core.io.windowing import resolve_window
from napari_sammed.core.volume.cache import CacheCorruptError
from napari_sammed.core.volume.embeddings import VolumeEmbeddings


class CountingEngine(ns.SliceEngine):
    def __init__(self, model, **kw):
        super().__init__(model, **kw)
        self.embedded = 0

    def embed(self, images, batch_size=None, progress=None):
        out = super().embed(images, batch_size, progress)
        self.embedded += out.shape[0]
        return out


@pytest.fixture(scope="module")
def model(small_checkpoint):
    return ns.load_model(small_checkpoint, device="cpu")


@pytest.fixture
def volume(ct_volume):
    return ct_volume[10:16]


def test_reuse_then_a_new_store_for_another_window(tmp_path, model, volume):
    window = resolve_window(volume, "ct-soft-tissue")
    first = VolumeEmbeddings(CountingEngine(model), volume, window, cache_dir=tmp_path)
    first.compute()
    assert first.cache.is_complete()
    assert first.cache.bytes_per_slice == 256 * 1024

    engine = CountingEngine(model)
    again = VolumeEmbeddings(engine, volume, window, cache_dir=tmp_path)
    assert again.cache.is_complete()
    torch.testing.assert_close(again.get(3), first.get(3))
    assert engine.embedded == 0

    other = VolumeEmbeddings(CountingEngine(model), volume, resolve_window(volume, "ct-lung"), cache_dir=tmp_path)
    assert other.cache.missing() == list(range(6))
    other.compute([0])
    # Going back to the first window re-embeds nothing: its store was kept, not rebuilt.
    engine = CountingEngine(model)
    back = VolumeEmbeddings(engine, volume, window, cache_dir=tmp_path)
    assert back.cache.is_complete() and len(list(tmp_path.glob("*.zarr"))) == 2
    back.get(5)
    assert engine.embedded == 0

    changed = volume.copy()
    changed[0, 0, 0] += 1
    assert VolumeEmbeddings(CountingEngine(model), changed, window, cache_dir=tmp_path).cache.missing() == list(range(6))


def test_cache_folder_is_kept_within_its_budget(tmp_path, model, volume):
    """Opening a store drops the least recently used others beyond the budget; never the one in use."""
    from napari_sammed.core.volume.cache import _size

    def embedded(preset, budget):
        store = VolumeEmbeddings(ns.SliceEngine(model), volume, resolve_window(volume, preset), cache_dir=tmp_path,
                                 cache_budget=budget)
        store.compute()
        return store.cache.path

    first = embedded("ct-soft-tissue", 2**40)
    budget = 2 * _size(first) + 2**16  # room for two full stores
    stores = [first, embedded("ct-lung", budget), embedded("ct-bone", budget)]
    for n, path in enumerate(stores):
        os.utime(path, (1000 + n, 1000 + n))  # used in this order
    newest = embedded("ct-brain", budget)
    assert set(tmp_path.glob("*.zarr")) == {stores[1], stores[2], newest}  # the oldest went


def test_prune_touches_only_its_own_stores_and_none_in_use(tmp_path, model, volume):
    """A cache folder may hold a user's own zarr volumes; a store written to lately may be in use elsewhere."""
    import zarr

    from napari_sammed.core.io.write import write_zarr
    from napari_sammed.core.volume.cache import prune

    write_zarr(tmp_path / "my_labels.zarr", np.ones((2, 4, 4), np.uint8), {})
    zarr.open_group(str(tmp_path / "0123456789abcdef_z_lite-medsam_0123456789.zarr"), mode="w")  # no signature
    store = VolumeEmbeddings(ns.SliceEngine(model), volume, resolve_window(volume, "ct-lung"), cache_dir=tmp_path)
    store.compute([0])
    assert prune(tmp_path, budget_bytes=0) == []  # written a moment ago: perhaps in use by another process
    os.utime(store.cache.path, (1000, 1000))
    assert prune(tmp_path, budget_bytes=0) == [store.cache.path]
    assert (tmp_path / "my_labels.zarr").exists()
    assert (tmp_path / "0123456789abcdef_z_lite-medsam_0123456789.zarr").exists()


def test_resume_after_interruption(tmp_path, model, volume):
    window = resolve_window(volume, "ct-soft-tissue")
    calls = {"n": 0}

    def stop_after_first_batch():
        calls["n"] += 1
        return calls["n"] > 1

    partial = VolumeEmbeddings(CountingEngine(model, batch_size=2), volume, window, cache_dir=tmp_path)
    assert partial.compute(should_stop=stop_after_first_batch) == 2
    engine = CountingEngine(model, batch_size=2)
    resumed = VolumeEmbeddings(engine, volume, window, cache_dir=tmp_path)
    assert resumed.cache.missing() == [2, 3, 4, 5]
    resumed.compute()
    assert engine.embedded == 4
    fresh = VolumeEmbeddings(ns.SliceEngine(model), volume, window)
    fresh.compute()
    for i in range(6):
        torch.testing.assert_close(torch.from_numpy(resumed.cache.read(i)), fresh.get(i), atol=1e-4, rtol=1e-4)


def test_corruption_is_detected(tmp_path, model, volume):
    window = resolve_window(volume, "ct-soft-tissue")
    store = VolumeEmbeddings(ns.SliceEngine(model), volume, window, cache_dir=tmp_path)
    store.compute()
    store.cache.embeddings[2] = np.zeros(store.cache.embeddings.shape[1:], np.float32)  # bypasses checksums
    with pytest.raises(CacheCorruptError, match="slice 2"):
        store.cache.read(2)
    assert store.cache.verify() == [2]
    assert store.cache.missing() == [2]


def test_float16_storage_halves_bytes(tmp_path, model, volume):
    window = resolve_window(volume, "ct-soft-tissue")
    store = VolumeEmbeddings(ns.SliceEngine(model), volume, window, cache_dir=tmp_path, storage_dtype="float16")
    assert store.cache.bytes_per_slice == 128 * 1024
    store.compute([0])
    assert store.cache.read(0).dtype == np.float32


def test_embed_cli_resumes(tmp_path, small_checkpoint):
    from napari_sammed.cli import main
    from tests.conftest import PACKAGE_DATA

    args = ["embed", str(PACKAGE_DATA / "example_mr_sm.nii.gz"), "--cache-dir", str(tmp_path),
            "--checkpoint", str(small_checkpoint), "--window", "percentile", "--device", "cpu"]
    assert main(args) == 0
    stores = list(tmp_path.glob("*.zarr"))
    assert len(stores) == 1
    assert main(args) == 0
    assert main(["embed", str(tmp_path / "nope.nii.gz"), "--cache-dir", str(tmp_path)]) == 2
