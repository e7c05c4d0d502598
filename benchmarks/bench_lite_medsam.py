"""LiteMedSAM on the CPU: the official per-slice loop (CVPR24_LiteMedSAM_infer.py) vs our paths,
measured in the same run and interleaved (A, B, A, B ...), so a busy machine slows all alike.
Prints a Markdown table: slices/s or ms per click, speed-up vs official, agreement.

    python benchmarks/bench_lite_medsam.py [--slices 16] [--rounds 4] [--compile]

Data: the two real 512 x 512 CT slices of SAM-Med2D's data_demo (tests/data), each also flipped
and shifted to make a stack of ``--slices``; boxes are the bounding boxes of their organ masks.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import napari_sammed as ns
from napari_sammed.core.engine.lite_medsam_backend import LiteMedSamBackend
from napari_sammed.core.engine.slice_workers import SliceWorkers
from napari_sammed.core.volume.embeddings import VolumeEmbeddings

DEMO = Path(__file__).resolve().parents[1] / "tests" / "data" / "sammed2d" / "data_demo"
CASES = ("amos_0004_75", "amos_0006_90")  # the 512 x 512 CT slices


def load_cases() -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """[(rgb (512, 512, 3) uint8, [organ mask (512, 512) bool, ...]), ...]"""
    out = []
    for name in CASES:
        rgb = np.asarray(Image.open(DEMO / "images" / f"{name}.png").convert("RGB"))
        masks = [np.asarray(Image.open(p)) > 0 for p in sorted((DEMO / "masks").glob(f"{name}_*.png"))]
        out.append((rgb, masks))
    return out


def stack_of(cases, n: int) -> np.ndarray:
    """(n, 512, 512) grey uint8: the real slices, flipped and shifted (distinct inputs)."""
    greys = [rgb[..., 0] for rgb, _ in cases]
    out = []
    for i in range(n):
        g = greys[i % len(greys)]
        g = g[:, ::-1] if (i // 2) % 2 else g
        out.append(np.roll(g, 8 * (i // 4), axis=0))
    return np.ascontiguousarray(np.stack(out))


def box_of(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([cols.min(), rows.min(), cols.max(), rows.max()], float)


def interior_point(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    row, col = np.unravel_index(np.argmax(ndi.distance_transform_edt(mask)), mask.shape)
    return np.array([[col, row]], float)


# ---- the official procedure, step by step (CVPR24_LiteMedSAM_infer.py) ----------------------
def official_preprocess(rgb: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    height, width = rgb.shape[:2]
    scale = 256 / max(height, width)
    new_h, new_w = int(height * scale + 0.5), int(width * scale + 0.5)
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA).astype(np.float64)
    norm = (resized - resized.min()) / np.clip(resized.max() - resized.min(), 1e-8, None)
    padded = np.pad(norm, ((0, 256 - new_h), (0, 256 - new_w), (0, 0)))
    return torch.tensor(padded).float().permute(2, 0, 1)[None], (new_h, new_w)


@torch.no_grad()
def official_encode(model, rgb: np.ndarray) -> torch.Tensor:
    return model.image_encoder(official_preprocess(rgb)[0].to(model.device))


@torch.no_grad()
def official_decode(model, embedding: torch.Tensor, box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Prompt encoder + mask decoder + crop + bilinear to H x W + sigmoid > 0.5, one box."""
    height, width = size
    scale = 256 / max(height, width)
    new_h, new_w = int(height * scale + 0.5), int(width * scale + 0.5)
    box256 = torch.tensor([[int(v * scale) for v in box]], dtype=torch.float, device=embedding.device)[:, None, :]
    sparse, dense = model.prompt_encoder(points=None, boxes=box256, masks=None)
    low_res, _ = model.mask_decoder(
        image_embeddings=embedding, image_pe=model.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False,
    )
    low_res = F.interpolate(low_res, (256, 256), mode="bilinear", align_corners=False)
    logits = F.interpolate(low_res[..., :new_h, :new_w], (height, width), mode="bilinear", align_corners=False)
    return (torch.sigmoid(logits) > 0.5)[0, 0].cpu().numpy()


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / float(total)


def clock(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (slices split among them)")
    parser.add_argument("--clicks", type=int, default=5, help="timed repeats per prompt")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile row (minutes to compile)")
    args = parser.parse_args()
    torch.manual_seed(0)
    loaded = ns.load_model(device="cpu")
    model = loaded.network  # the network as loaded, for the official procedure
    cases = load_cases()
    stack = stack_of(cases, args.slices)
    rgb = np.repeat(stack[..., None], 3, axis=-1)
    ours = ns.SliceEngine(loaded)  # LiteMedSamBackend(loaded): optimised encoder, two slices in flight
    one_slice = LiteMedSamBackend(loaded)
    one_slice.workers = SliceWorkers(1)  # the optimised encoder, one slice on all cores
    single = ns.SliceEngine(one_slice)
    plain = ns.SliceEngine(LiteMedSamBackend(loaded, optimized=False))  # the model as loaded, batch 4
    ours.embed(stack[:4])  # start the worker threads (as any session's first volume does)

    # ---- whole-volume embedding, interleaved per round ----------------------------------
    paths = {
        "official per-slice loop, fp32": lambda idx: [official_encode(model, rgb[i]) for i in idx],
        "engine, plain fp32 encoder, batch 4": lambda idx: plain.embed(stack[idx]),
        "engine, optimised encoder, one slice in flight": lambda idx: single.embed(stack[idx]),
        "engine, optimised encoder (ours)": lambda idx: ours.embed(stack[idx]),
        "VolumeEmbeddings.compute, optimised (ours)": lambda idx: VolumeEmbeddings(
            ours, stack[idx], window=None).compute(),
    }
    if args.compile:
        backend = LiteMedSamBackend(loaded)
        backend.encoder = torch.compile(backend.encoder, dynamic=False)
        backend.workers = SliceWorkers(1)  # one compiled graph, called from one thread
        compiled = ns.SliceEngine(backend)
        compile_s, _ = clock(lambda: compiled.embed(stack[:1]))
        paths[f"optimised + torch.compile (compile {compile_s:.0f} s, not counted)"] = lambda idx: compiled.embed(
            stack[idx])
    seconds = {name: 0.0 for name in paths}
    for chunk in np.array_split(np.arange(args.slices), args.rounds):
        for name, fn in paths.items():
            seconds[name] += clock(lambda fn=fn, chunk=chunk: fn(chunk))[0]

    # ---- agreement: embeddings -----------------------------------------------------------
    ref_emb = torch.cat([official_encode(model, rgb[i]) for i in range(len(cases))])
    diffs = {
        "engine, plain fp32 encoder, batch 4": plain.embed(stack[: len(cases)]),
        "engine, optimised encoder (ours)": ours.embed(stack[: len(cases)]),
        "engine, optimised encoder, one slice in flight": single.embed(stack[: len(cases)]),
    }
    emb_diff = {k: float((v - ref_emb).abs().max()) for k, v in diffs.items()}
    emb_diff["VolumeEmbeddings.compute, optimised (ours)"] = emb_diff["engine, optimised encoder (ours)"]

    # ---- click -> preview on a cached embedding, interleaved -------------------------------
    emb_ours = diffs["engine, optimised encoder (ours)"]
    emb_fp16 = emb_ours.half().float()  # what an fp16 cache stores
    t_official, t_box, t_click = [], [], []
    dice_box, dice_fp16, dice_click = [], [], []
    for k, (_image, masks) in enumerate(cases):
        for mask in masks:
            box, point = box_of(mask), interior_point(mask)
            ref = official_decode(model, ref_emb[k : k + 1], box, mask.shape)
            pred = ours.predict(emb_ours[k], mask.shape, box=box)
            dice_box.append(dice(pred.mask, ref))
            dice_fp16.append(dice(ours.predict(emb_fp16[k], mask.shape, box=box).mask, ref))
            dice_click.append(dice(ours.predict(emb_ours[k], mask.shape, points=point, point_labels=[1]).mask, mask))
            embedding, size = emb_ours[k], mask.shape
            official = partial(official_decode, model, ref_emb[k : k + 1], box, size)
            with_box = partial(ours.predict, embedding, size, box=box)
            with_click = partial(ours.predict, embedding, size, points=point, point_labels=[1])
            for _ in range(args.clicks):
                t_official.append(clock(official)[0])
                t_box.append(clock(with_box)[0])
                t_click.append(clock(with_click)[0])

    # ---- table ---------------------------------------------------------------------------
    n = args.slices
    base = seconds["official per-slice loop, fp32"]
    print(f"\nLiteMedSAM, CPU ({torch.get_num_threads()} threads), {n} real CT slices 512 x 512, "
          f"{args.rounds} interleaved rounds; clicks: {len(dice_box)} organs x {args.clicks}, median\n")
    print("| path | slices/s or ms per click | speed-up vs official | agreement with official |")
    print("|---|---:|---:|---|")
    for name, s in seconds.items():
        agree = f"max abs emb diff {emb_diff[name]:.1e}" if name in emb_diff else ("reference" if s == base else "")
        print(f"| embed: {name} | {n / s:.2f} slices/s ({1000 * s / n:.0f} ms/slice) | {base / s:.2f}x | {agree} |")
    off = 1000 * float(np.median(t_official))
    box_ms, click_ms = 1000 * float(np.median(t_box)), 1000 * float(np.median(t_click))
    print(f"| box: official prompt enc + decoder + upsample | {off:.0f} ms | 1.00x | reference |")
    print(f"| box -> mask, engine.predict (ours) | {box_ms:.0f} ms | {off / box_ms:.2f}x | "
          f"Dice min {min(dice_box):.3f} mean {np.mean(dice_box):.3f} |")
    print(f"| box -> mask on an fp16-stored embedding | | | Dice min {min(dice_fp16):.3f} mean "
          f"{np.mean(dice_fp16):.3f} |")
    print(f"| point click -> mask, engine.predict via box_clicks (ours) | {click_ms:.0f} ms | "
          f"{off / click_ms:.2f}x | Dice vs true organ mean {np.mean(dice_click):.3f} (no official click) |")
    print("\nembedding cache per slice: fp32 "
          f"{emb_ours[0].numel() * 4 / 2**20:.0f} MiB, fp16 {emb_ours[0].numel() * 2 / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
