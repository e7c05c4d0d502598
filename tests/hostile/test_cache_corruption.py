"""A damaged embedding cache: chunks deleted or with flipped bytes are embedded again."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from tests.hostile.conftest import run, save_nifti, tiny_labels


def chunk(store, index):
    return store / "embeddings" / "c" / str(index) / "0" / "0" / "0"


def damage(store, delete: int, flip: int) -> None:
    chunk(store, delete).unlink()
    path = chunk(store, flip)
    data = bytearray(path.read_bytes())
    for i in range(0, len(data), max(len(data) // 16, 1)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_embed_recomputes_damaged_chunks_and_propagate_works(tmp_path, capsys, case_files):
    image, _ = case_files
    cache = tmp_path / "cache"
    code, out, _ = run(capsys, "embed", image, "--cache-dir", cache, "--kind", "weight-free")
    assert code == 0 and out.startswith("0 slices reused, 6 embedded")
    (store,) = cache.iterdir()
    good = {i: chunk(store, i).read_bytes() for i in range(6)}

    damage(store, delete=2, flip=4)
    code, out, err = run(capsys, "embed", image, "--cache-dir", cache, "--kind", "weight-free")
    assert code == 0, err
    assert out.startswith("4 slices reused, 2 embedded") and "(2 corrupt cached slices recomputed: 2, 4)" in out
    assert {i: chunk(store, i).read_bytes() for i in range(6)} == good  # rewritten exactly

    code, out, _ = run(capsys, "embed", image, "--cache-dir", cache, "--kind", "weight-free")
    assert code == 0 and out.startswith("6 slices reused, 0 embedded") and "corrupt" not in out

    damage(store, delete=3, flip=1)  # propagate straight away, no embed in between
    seeds = np.zeros_like(tiny_labels())
    seeds[3] = tiny_labels()[3] == 1
    seeds_file = save_nifti(tmp_path / "seeds.nii.gz", seeds)
    out_file = tmp_path / "out.nii.gz"
    code, out, err = run(capsys, "propagate", image, seeds_file, out_file, "--cache-dir", cache, "--kind", "weight-free")
    assert code == 0, err
    labels = np.asarray(nib.load(str(out_file)).dataobj).T
    assert labels[3].sum() == seeds[3].sum() and labels[1].any() and labels[4].any()
    assert {i: chunk(store, i).read_bytes() for i in range(6)} == good
