"""LiteMedSAM (the default engine) on a GPU: the official per-slice loop vs the engine, and the
workflows (propagation, SAMAug) on the GPU checked against the same run on the CPU.
Prints Markdown tables.

    python benchmarks/bench_gpu.py [--slices 64] [--device cuda]

Data: the real 512 x 512 CT slices of SAM-Med2D's data_demo (as in bench_lite_medsam.py) for
speed, the sample CT and MR volumes with their reference organs for the workflows.
"""

from __future__ import annotations

import argparse
import traceback
from functools import partial
from pathlib import Path

import numpy as np
import torch

import napari_sammed as ns
from bench_engine import timed as clock  # best of n, the GPU's queue drained around each
from bench_lite_medsam import box_of, dice, load_cases, official_decode, official_encode, stack_of
from napari_sammed.core.engine.samaug_priors import samaug_slice
from napari_sammed.core.io.read import read_volume
from napari_sammed.core.io.windowing import resolve_window
from napari_sammed.core.volume.embeddings import VolumeEmbeddings
from napari_sammed.core.volume.propagation import propagate

DATA = Path(ns.__file__).parent / "_data"
ORGANS = {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "liver": 5}
VOLUMES = {"CT": ("example_ct_sm", "example_seg", "ct-abdomen"), "MR": ("example_mr_sm", "example_seg_mr", "percentile")}


def embedding_rows(device: str, n: int, batch_size: int) -> list[str]:
    cases = load_cases()
    stack = stack_of(cases, n)
    rgb = np.repeat(stack[..., None], 3, axis=-1)
    demo = np.stack([image[..., 0] for image, _ in cases])  # the two slices with organ masks
    cpu_model = ns.load_model(device="cpu").network
    reference = [[official_decode(cpu_model, official_encode(cpu_model, image)[None][0], box_of(m), m.shape)
                  for m in masks] for image, masks in cases]
    model = ns.load_model(device=device)
    official = lambda: [official_encode(model.network, rgb[i]) for i in range(n)]  # noqa: E731
    official()  # warm-up (cuDNN picks its kernels)
    t_official, _ = clock(official)
    rows = [f"| embed: official per-slice loop, fp32 | {n / t_official:.1f} slices/s | 1.00x | reference |"]
    engines = {"fp32": ns.SliceEngine(model, batch_size)}
    for dtype in ("bf16", "fp16") if torch.device(device).type == "cuda" else ("bf16",):
        engines[dtype] = ns.SliceEngine(ns.load_model(device=device, dtype=dtype), batch_size)
    demo_embeddings = {}
    for dtype, engine in engines.items():
        engine.embed(stack)  # warm-up: every batch shape, once (cuDNN picks kernels per shape)
        t, _ = clock(lambda engine=engine: engine.embed(stack))
        embeddings = demo_embeddings[dtype] = engine.embed(demo)
        worst = min(dice(engine.predict(embeddings[k], m.shape, box=box_of(m)).mask, reference[k][j])
                    for k, (_, masks) in enumerate(cases) for j, m in enumerate(masks))
        rows.append(f"| embed: engine, {dtype} | {n / t:.1f} slices/s | {t_official / t:.2f}x | "
                    f"box masks vs CPU official: Dice min {worst:.3f} |")

    engine, embeddings = engines["fp32"], demo_embeddings["fp32"]
    t_off, t_box = [], []
    for k, (_, masks) in enumerate(cases):
        for m in masks:
            box = box_of(m)
            t_off.append(clock(partial(official_decode, model.network, embeddings[k : k + 1].to(device), box, m.shape), 5)[0])
            t_box.append(clock(partial(engine.predict, embeddings[k], m.shape, box=box), 5)[0])
    off, ours = 1000 * float(np.median(t_off)), 1000 * float(np.median(t_box))
    rows.append(f"| box: official prompt encoder + decoder + upsample | {off:.1f} ms | 1.00x | reference |")
    rows.append(f"| box -> mask, `engine.predict` | {ours:.1f} ms | {off / ours:.2f}x | |")
    return rows


def workflow_rows(device: str) -> list[str]:
    """Embed, propagate every organ from its middle slice, SAMAug the middle slice: GPU vs CPU."""
    rows = []
    for name, (image_name, label_name, window_name) in VOLUMES.items():
        volume, labels = (read_volume(DATA / f"{n}.nii.gz").data for n in (image_name, label_name))
        window = resolve_window(volume, window_name)
        results = {}
        for dev in dict.fromkeys(("cpu", device)):  # once when --device cpu
            engine = ns.SliceEngine(ns.load_model(device=dev))
            store = VolumeEmbeddings(engine, volume, window, "z")
            t_embed, _ = clock(store.compute)
            masks, t_prop = {}, 0.0
            for organ, label in ORGANS.items():
                truth = labels == label
                present = np.flatnonzero(truth.any(axis=(1, 2)))
                z = int(present[len(present) // 2])
                t, result = clock(partial(propagate, store, {label: {z: truth[z]}}))
                t_prop += t
                mask = np.zeros_like(truth)
                mask[z] = truth[z]
                for k, m in result.masks[label].items():
                    mask[k] = m
                masks[organ] = mask
            z = volume.shape[0] // 2
            t_aug, aug = clock(partial(samaug_slice, engine, volume[z], window, embedding=store.get(z)))
            results[dev] = (t_embed, t_prop, masks, t_aug, aug)
        (ce, cp, cmasks, ca, caug), (ge, gp, gmasks, ga, gaug) = results["cpu"], results[device]
        truth_dice = {dev: np.mean([dice(results[dev][2][o], labels == lab) for o, lab in ORGANS.items()])
                      for dev in results}
        agree = min(dice(gmasks[o], cmasks[o]) for o in ORGANS)
        rows.append(f"| {name} {volume.shape}: embed | {1000 * ce:.0f} ms | {1000 * ge:.0f} ms | |")
        rows.append(f"| {name}: propagate 4 organs | {1000 * cp:.0f} ms | {1000 * gp:.0f} ms | 3D Dice vs reference "
                    f"{truth_dice['cpu']:.3f} / {truth_dice[device]:.3f}; GPU vs CPU min {agree:.3f} |")
        rows.append(f"| {name}: SAMAug middle slice | {1000 * ca:.0f} ms ({len(caug.masks.masks)} masks) | "
                    f"{1000 * ga:.0f} ms ({len(gaug.masks.masks)} masks) | segmentation prior max abs diff "
                    f"{float(np.abs(gaug.seg_prior - caug.seg_prior).max()):.3f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=4, help="slices per encoder call (the engine's default: 4)")
    parser.add_argument("--no-tf32", action="store_true", help="full fp32 convolutions and matmuls on the GPU")
    parser.add_argument("--no-workflows", action="store_true", help="only the embedding and click rows")
    args = parser.parse_args()
    if args.no_tf32:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    print(f"\nLiteMedSAM on {name} (torch {torch.__version__}), {args.slices} real CT slices 512 x 512, "
          f"batch {args.batch_size}, TF32 convolutions {torch.backends.cudnn.allow_tf32}\n")
    print("| path | throughput or latency | vs official | agreement |")
    print("|---|---:|---:|---|")
    print_rows(embedding_rows, args.device, args.slices, args.batch_size)
    if args.no_workflows:
        return
    print(f"\nWorkflows on the sample volumes, CPU ({torch.get_num_threads()} threads) vs {name}\n")
    print("| what | CPU | GPU | agreement |")
    print("|---|---:|---:|---|")
    print_rows(workflow_rows, args.device)


def print_rows(section, *args) -> None:
    """One failing section (an op missing on a device, say) still lets the others report."""
    try:
        print("\n".join(section(*args)), flush=True)
    except Exception:
        traceback.print_exc()


if __name__ == "__main__":
    main()
