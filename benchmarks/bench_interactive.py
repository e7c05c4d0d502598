"""Annotation effort on the shared CT and MR: the CVPR 2025 interactive protocol (a box with the
organ's z-range, then 5 simulated clicks) through VolumeAnnotator, beside the same protocol with
the object re-propagated from scratch after every interaction (what other tools do), and the
first guess (the reference mask on the middle slice as the only seed, no z-range) under each
intensity window. Prints Markdown tables.

    python benchmarks/bench_interactive.py [--all-classes] [--clicks 5] [--device cpu]

Seconds per interaction are measured twice: once the slices are embedded (the whole volume
embedded first), and on a fresh volume, where the slices an interaction needs are embedded then.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import napari_sammed as ns
from napari_sammed.core.io.read import read_volume
from napari_sammed.core.io.tables import markdown_table
from napari_sammed.core.io.windowing import resolve_window
from napari_sammed.core.jobs.simulate import simulate, summary
from napari_sammed.core.settings import PropagationSettings, SimulateSettings
from napari_sammed.core.volume.metrics import dice

DATA = ns.__file__.rsplit("/", 1)[0] + "/_data/"
SAMPLES = {"CT": ("example_ct_sm", "example_seg", "ct-abdomen"), "MR": ("example_mr_sm", "example_seg_mr", "percentile")}
ORGANS = {1: "spleen", 2: "kidney R", 3: "kidney L", 5: "liver"}
WINDOWS = {"CT": ("ct-abdomen", "ct-soft-tissue", "percentile"), "MR": ("percentile",)}


def load(name: str):
    image, labels, window = SAMPLES[name]
    volume = read_volume(f"{DATA}{image}.nii.gz")
    return volume, read_volume(f"{DATA}{labels}.nii.gz").data, window


def embedded(engine, data, window: str):
    store = ns.VolumeEmbeddings(engine, data, resolve_window(data, window), "z")
    started = time.perf_counter()
    store.compute()
    return store, time.perf_counter() - started


def protocol_rows(engine, args) -> tuple[list[list], dict]:
    rows, means = [], {}
    for name in SAMPLES:
        volume, labels, window = load(name)
        store, seconds = embedded(engine, volume.data, window)
        classes = [int(v) for v in np.unique(labels) if v] if args.all_classes else list(ORGANS)
        for mode, from_scratch in (("incremental", False), ("from scratch", True)):
            settings = SimulateSettings(clicks=args.clicks, from_scratch=from_scratch)
            runs = simulate(store, labels, volume.spacing, classes, settings)
            means[(name, mode)] = summary(runs) | {"slowest": max(max(r.seconds[1:], default=0.0) for r in runs)}
            rows += [[name, ORGANS.get(run.class_id, run.class_id), mode, *(f"{d:.3f}" for d in run.dice),
                      f"{run.dsc_auc:.2f}", f"{run.nsd[-1]:.3f}", f"{np.mean(run.seconds[1:]):.2f}"] for run in runs]
        fresh = []  # each class on a volume nobody embedded yet: its interactions embed what they need
        for class_id in classes[: args.fresh_classes]:
            store = ns.VolumeEmbeddings(engine, volume.data, resolve_window(volume.data, window), "z")
            fresh += simulate(store, labels, volume.spacing, [class_id], SimulateSettings(clicks=args.clicks))[0].seconds
        if fresh:
            means[(name, "fresh")] = {"seconds": float(np.mean(fresh)), "first": float(max(fresh)),
                                      "embed_all": seconds}
    return rows, means


def first_guess_rows(engine, args) -> list[list]:
    """Per class: 3D Dice of a propagation from the reference's middle slice, per window."""
    rows = []
    for name in SAMPLES:
        volume, labels, _ = load(name)
        classes = [int(v) for v in np.unique(labels) if v] if args.all_classes else list(ORGANS)
        scores = {}
        for window in WINDOWS[name]:
            store, _ = embedded(engine, volume.data, window)
            for class_id in classes:
                truth = labels == class_id
                present = np.flatnonzero(truth.any(axis=(1, 2)))
                middle = int(present[len(present) // 2])
                annotator = ns.VolumeAnnotator(store, PropagationSettings())
                scores.setdefault(class_id, {})[window] = dice(annotator.paint(class_id, middle, truth[middle]), truth)
        for class_id, by_window in scores.items():
            cells = [f"{by_window[w]:.3f}" if w in by_window else "" for w in WINDOWS["CT"]]
            rows.append([name, ORGANS.get(class_id, class_id), *cells])
        means = [np.mean([v[w] for v in scores.values()]) if w in WINDOWS[name] else None for w in WINDOWS["CT"]]
        rows.append([name, "**mean**", *("" if m is None else f"**{m:.3f}**" for m in means)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--all-classes", action="store_true", help="every labelled class, not the four organs")
    parser.add_argument("--clicks", type=int, default=5)
    parser.add_argument("--fresh-classes", type=int, default=2, help="classes timed on a not-yet-embedded volume")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    engine = ns.SliceEngine(ns.load_model(device=args.device))
    print(f"LiteMedSAM on {args.device}, {torch.get_num_threads()} threads\n")
    rows, means = protocol_rows(engine, args)
    steps = ["box", *(f"click {i}" for i in range(1, args.clicks + 1))]
    print(markdown_table(["volume", "class", "3D update", *steps, "DSC_AUC", "final NSD", "s/click"], rows, left=3))
    print()
    print(markdown_table(
        ["volume", "3D update", "Dice after box", "final Dice", "DSC_AUC", "final NSD", "s/interaction (embedded)",
         "slowest click"],
        [[name, mode, f"{s['dice_box']:.3f}", f"{s['dice_final']:.3f}", f"{s['dsc_auc']:.2f}", f"{s['nsd_final']:.3f}",
          f"{s['seconds']:.2f}", f"{s['slowest']:.2f}"] for (name, mode), s in means.items() if mode != "fresh"],
        left=2))
    fresh = [[name, f"{s['seconds']:.2f}", f"{s['first']:.2f}", f"{s['embed_all']:.1f} s"]
             for (name, mode), s in means.items() if mode == "fresh"]
    if fresh:
        print()
        print(markdown_table(["volume", "s/interaction, slices embedded on demand", "slowest interaction",
                              "embedding the whole volume"], fresh))
    print("\nFirst guess: reference mask on the middle slice as the only seed, no z-range (3D Dice)\n")
    print(markdown_table(["volume", "class", *WINDOWS["CT"]], first_guess_rows(engine, args), left=2))

if __name__ == "__main__":
    main()
