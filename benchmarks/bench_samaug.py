"""SAMAug benchmark: automatic masks + priors on one 512x512 slice with a cached embedding,
point prompts decoded in batches vs one at a time. Prints a Markdown table.

    python benchmarks/bench_samaug.py [--points-per-side 32] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import napari_sammed as ns
from napari_sammed.core.engine.automatic_masks import automatic_masks
from napari_sammed.core.engine.families import build_model
from napari_sammed.core.engine.samaug_priors import prior_maps
from napari_sammed.core.model.specs import VIT_SPECS
from napari_sammed.core.settings import AmgSettings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = ns.load_model(args.checkpoint, device="cpu") if args.checkpoint else build_model(VIT_SPECS["sam-med2d"])
    engine = ns.SliceEngine(model)
    image = np.random.default_rng(0).integers(0, 255, (args.size, args.size), dtype=np.uint8)
    emb = engine.embed(image)[0]
    n = args.points_per_side**2
    # Thresholds that keep every candidate, so the full post-processing path is timed.
    rows = []
    for batch in (256, 1):
        settings = AmgSettings(points_per_side=args.points_per_side, points_per_batch=batch,
                               pred_iou_thresh=-1e9, stability_score_thresh=-1e9, box_nms_thresh=0.5)
        start = time.perf_counter()
        auto = automatic_masks(engine, emb, image.shape, settings)
        prior_maps(auto.masks, auto.stability_scores)
        rows.append((f"AMG + priors, {n} points, batch {batch}", time.perf_counter() - start, len(auto.masks)))
    base = rows[1][1]
    print(f"\nSAMAug on one {args.size}x{args.size} slice, cached embedding, CPU threads {torch.get_num_threads()}\n")
    print("| what | seconds | masks kept | speed-up vs one at a time |")
    print("|---|---:|---:|---:|")
    for name, seconds, kept in rows:
        print(f"| {name} | {seconds:.2f} | {kept} | {base / seconds:.2f}x |")


if __name__ == "__main__":
    main()
