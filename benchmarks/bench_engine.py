"""Engine benchmark: embed fp32 vs bf16 vs batched, decode latency, cache bytes, and the
official one-slice-at-a-time procedure as the baseline. Prints a Markdown table.

    python benchmarks/bench_engine.py [--checkpoint PATH] [--slices 8] [--device cpu]

Without --checkpoint a random-init full-size SAM-Med2D is built (same compute as real weights).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

import napari_sammed as ns
from napari_sammed.core.engine.families import build_model
from napari_sammed.core.engine.slice_engine import Prompt
from napari_sammed.core.model.specs import VIT_SPECS
from napari_sammed.core.volume.cache import EmbeddingCache


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        if torch.cuda.is_available():  # time the GPU's work, not its queueing
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def official_slice(model, rgb, box):
    """The official predictor's per-slice work: numpy normalise, nearest resize, encode, decode."""
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)
    h, w = rgb.shape[:2]
    x = (rgb - mean) / std
    ys = np.minimum(np.floor(np.arange(256) * h / 256).astype(int), h - 1)
    xs = np.minimum(np.floor(np.arange(256) * w / 256).astype(int), w - 1)
    x = torch.from_numpy(np.ascontiguousarray(x[np.ix_(ys, xs)].transpose(2, 0, 1)))[None].to(model.device)
    with torch.no_grad():
        feats = model.image_encoder(x)
        b = torch.tensor(box * np.array([256 / w, 256 / h, 256 / w, 256 / h]), dtype=torch.float,
                         device=model.device)[None]
        sparse, dense = model.prompt_encoder(points=None, boxes=b, masks=None)
        low, iou = model.mask_decoder(feats, model.prompt_encoder.get_dense_pe(), sparse, dense, True)
        low = low[:, int(iou.argmax()) : int(iou.argmax()) + 1]
        up = F.interpolate(F.interpolate(low, (256, 256), mode="bilinear"), (h, w), mode="bilinear")
    return up


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.checkpoint:
        fp32 = ns.load_model(args.checkpoint, device=args.device)
        bf16 = ns.load_model(args.checkpoint, device=args.device, dtype="bf16")
    else:
        fp32, bf16 = build_model(VIT_SPECS["sam-med2d"]), build_model(VIT_SPECS["sam-med2d"])
        fp32.network.to(args.device)
        bf16.network.to(args.device).load_state_dict(fp32.network.state_dict())
        bf16.network.image_encoder.to(torch.bfloat16)
    rng = np.random.default_rng(0)
    n, size = args.slices, args.size
    slices = rng.integers(0, 255, (n, size, size), dtype=np.uint8)
    rgb = np.repeat(slices[..., None], 3, -1)
    box = np.array([100.0, 120.0, 300.0, 330.0])
    rows = []

    t_off, _ = timed(lambda: [official_slice(fp32.network, rgb[i], box) for i in range(n)])
    rows.append(("official loop, fp32 (encode+decode per slice)", t_off / n * 1000, "ms/slice", 1.0))
    e32 = ns.SliceEngine(fp32, batch_size=1)
    t, _ = timed(lambda: e32.embed(slices))
    rows.append(("engine embed fp32, batch 1", t / n * 1000, "ms/slice", t_off / t))
    e32b = ns.SliceEngine(fp32, batch_size=args.batch_size)
    t, emb = timed(lambda: e32b.embed(slices))
    rows.append((f"engine embed fp32, batch {args.batch_size}", t / n * 1000, "ms/slice", t_off / t))
    e16 = ns.SliceEngine(bf16, batch_size=args.batch_size)
    t, _ = timed(lambda: e16.embed(slices))
    rows.append((f"engine embed bf16, batch {args.batch_size}", t / n * 1000, "ms/slice", t_off / t))

    one = Prompt(box=box)
    t1, _ = timed(lambda: e32.predict_batch(emb[0], (size, size), [one]), repeat=20)
    rows.append(("decode 1 box on cached slice (click -> mask)", t1 * 1000, "ms", None))
    eight = [Prompt(box=box + 8 * k) for k in range(8)]
    t8, _ = timed(lambda: e32.predict_batch(emb[0], (size, size), eight), repeat=10)
    t8s, _ = timed(lambda: [e32.predict_batch(emb[0], (size, size), [p]) for p in eight], repeat=5)
    rows.append(("decode 8 objects, one batched call", t8 * 1000, "ms", t8s / t8))
    rows.append(("decode 8 objects, one call each", t8s * 1000, "ms", 1.0))
    classical = ns.SliceEngine(ns.load_model(kind="weight-free"))
    cemb = classical.embed(slices[:1])
    tc, _ = timed(lambda: classical.predict_batch(cemb[0], (size, size), [one]), repeat=10)
    rows.append(("weight-free engine, 1 box", tc * 1000, "ms", None))
    for dtype in ("float32", "float16"):
        with tempfile.TemporaryDirectory() as tmp:
            cache = EmbeddingCache.open(f"{tmp}/c.zarr", {"bench": True}, (1, 256, 16, 16), dtype)
            rows.append((f"cache bytes per slice ({dtype})", cache.bytes_per_slice / 1024, "KiB", None))

    print(f"\nSAM-Med2D engine benchmark ({'checkpoint' if args.checkpoint else 'random-init full size'},"
          f" {n} slices {size}x{size}, device {args.device}, torch threads {torch.get_num_threads()})\n")
    print("| what | value | unit | speed-up vs baseline |")
    print("|---|---:|---|---:|")
    for name, value, unit, ratio in rows:
        print(f"| {name} | {value:.1f} | {unit} | {'' if ratio is None else f'{ratio:.2f}x'} |")


if __name__ == "__main__":
    main()
