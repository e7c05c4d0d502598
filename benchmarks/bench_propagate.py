"""Propagation benchmark: one object through every slice with cached embeddings, and 8 objects
in one run vs 8 runs of one. Prints a Markdown table.

    python benchmarks/bench_propagate.py [--slices 300] [--size 512] [--checkpoint PATH]

SAM-Med2D: a random-init full-size model (same decoder compute as real weights) on stored
random embeddings, with the stop thresholds at zero so every front walks the whole volume.
Weight-free: the real CT sample resampled to --slices x --size x --size, liver and kidneys.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage as ndi

import napari_sammed as ns
from napari_sammed.core.engine.families import build_model
from napari_sammed.core.io.windowing import resolve_window
from napari_sammed.core.model.specs import VIT_SPECS
from napari_sammed.core.settings import PropagationSettings
from napari_sammed.core.volume.embeddings import VolumeEmbeddings
from napari_sammed.core.volume.propagation import propagate

DATA = Path(ns.__file__).parent / "_data"
WALK_EVERYTHING = PropagationSettings(min_iou=0.0, min_neighbour_iou=0.0, min_area=1)


class StoredEmbeddings:
    """Embeddings already in memory, as after reading a finished cache (the protocol propagate uses)."""

    axis = 0

    def __init__(self, engine, embeddings: torch.Tensor, slice_shape: tuple[int, int]) -> None:
        self.engine, self.embeddings, self.slice_shape = engine, embeddings, slice_shape
        self.n_slices = len(embeddings)

    def is_embedded(self, index: int) -> bool:
        return True

    def missing(self, indices) -> list[int]:
        return []

    def get(self, index: int) -> torch.Tensor:
        return self.embeddings[index]

    def compute(self, indices=None, **_) -> int:
        return 0


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def object_seeds(n_objects: int, size: int, index: int) -> dict:
    """n square-ish objects on one slice, spread over a grid."""
    seeds, side = {}, int(np.ceil(np.sqrt(n_objects)))
    cell = size // side
    for i in range(n_objects):
        r, c = divmod(i, side)
        mask = np.zeros((size, size), bool)
        mask[r * cell + cell // 4 : r * cell + 3 * cell // 4, c * cell + cell // 4 : c * cell + 3 * cell // 4] = True
        seeds[i + 1] = {index: mask}
    return seeds


def compare(embeddings, seeds, settings) -> tuple[float, float, int]:
    together, result = timed(lambda: propagate(embeddings, seeds, settings))
    alone = sum(timed(lambda o=o: propagate(embeddings, {o: seeds[o]}, settings))[0] for o in seeds)
    slices = sum(len(m) for m in result.masks.values())
    return together, alone, slices


def sam_rows(args) -> list[tuple]:
    torch.manual_seed(0)
    if args.checkpoint:
        model = ns.load_model(args.checkpoint, device=args.device)
    else:
        model = build_model(VIT_SPECS["sam-med2d"])
        model.network.to(args.device).eval()
    engine = ns.SliceEngine(model)
    embeddings = StoredEmbeddings(engine, torch.randn(args.slices, 256, 16, 16), (args.size, args.size))
    middle = args.slices // 2
    one = object_seeds(1, args.size, middle)
    t_one, result = timed(lambda: propagate(embeddings, one, WALK_EVERYTHING))
    walked = len(result.masks[1])
    together, alone, slices = compare(embeddings, object_seeds(8, args.size, middle), WALK_EVERYTHING)
    return [
        ("SAM-Med2D, 1 object", walked, t_one, f"{1000 * t_one / walked:.1f} ms/slice"),
        ("SAM-Med2D, 8 objects in one run", slices, together, f"{alone / together:.2f}x vs one at a time"),
        ("SAM-Med2D, 8 objects one at a time", slices, alone, "1.00x"),
    ]


def weight_free_rows(args) -> list[tuple]:
    volume = np.asarray(nib.load(str(DATA / "example_ct_sm.nii.gz")).dataobj).T
    labels = np.asarray(nib.load(str(DATA / "example_seg.nii.gz")).dataobj).T
    zoom = (args.slices / volume.shape[0], args.size / volume.shape[1], args.size / volume.shape[2])
    volume = ndi.zoom(volume.astype(np.float32), zoom, order=1)
    labels = ndi.zoom(labels, zoom, order=0)
    engine = ns.SliceEngine(ns.load_model(kind="weight-free"))
    embeddings = VolumeEmbeddings(engine, volume, resolve_window(volume, "ct-abdomen"), "z")
    embeddings.compute()  # "cached": computed before timing
    middle = args.slices // 2
    liver = {5: {middle: labels[middle] == 5}}
    t_one, result = timed(lambda: propagate(embeddings, liver))
    walked = len(result.masks[5])
    seeds = {o: {middle: labels[middle] == o} for o in (1, 2, 3, 5) if (labels[middle] == o).any()}
    together, alone, slices = compare(embeddings, seeds, PropagationSettings())
    return [
        ("weight-free, liver", walked, t_one, f"{1000 * t_one / walked:.1f} ms/slice"),
        (f"weight-free, {len(seeds)} organs in one run", slices, together, f"{alone / together:.2f}x vs one at a time"),
        (f"weight-free, {len(seeds)} organs one at a time", slices, alone, "1.00x"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    rows = sam_rows(args) + weight_free_rows(args)
    print(f"Propagation, {args.slices} cached slices of {args.size}x{args.size}, device {args.device}, "
          f"{torch.get_num_threads()} threads\n")
    print("| run | slices decoded | seconds | note |")
    print("|---|---:|---:|---|")
    for name, slices, seconds, note in rows:
        print(f"| {name} | {slices} | {seconds:.2f} | {note} |")


if __name__ == "__main__":
    main()
