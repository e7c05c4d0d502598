"""Bulk-run benchmark: cases per minute in one process vs a dask LocalCluster, and peak RSS per
process. Prints a Markdown table.

    python benchmarks/bench_batch.py [--cases 6] [--workers 2] [--kind weight-free] [--checkpoint P]
                                     [--steps propagate,samaug,export] [--big 300]

The cases repeat the shared CT and MR samples (each with the reference mask of spleen, kidneys
and liver on one slice as seeds). Both runs go through the ``napari-sammed batch`` command line
in a fresh process, so the wall time includes start-up (and the cluster's, for --workers). Peak
RSS comes from each case's ``done.json`` (``getrusage`` in the process that ran it).
``--big S`` adds one local run on the CT resampled to S x 512 x 512 to show the memory bound.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

import napari_sammed as ns

DATA = Path(ns.__file__).parent / "_data"
SAMPLES = {"ct": ("example_ct_sm.nii.gz", "example_seg.nii.gz", "ct-abdomen"),
           "mr": ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz", "percentile")}
ORGANS = (1, 2, 3, 5)


def seeds_from(ref: np.ndarray) -> np.ndarray:
    """(Z, Y, X) reference labels -> the mask of each organ on its middle slice."""
    seeds = np.zeros_like(ref)
    for organ in ORGANS:
        present = np.flatnonzero((ref == organ).any(axis=(1, 2)))
        if len(present):
            k = present[len(present) // 2]
            seeds[k][ref[k] == organ] = organ
    return seeds


def write_inputs(root: Path, big: int | None) -> dict[str, tuple[Path, Path, str]]:
    inputs = {}
    for name, (image, seg, window) in SAMPLES.items():
        source = nib.load(str(DATA / seg))
        nib.save(nib.Nifti1Image(seeds_from(np.asarray(source.dataobj).T).T, source.affine, source.header),
                 str(root / f"{name}_seeds.nii.gz"))
        inputs[name] = (DATA / image, root / f"{name}_seeds.nii.gz", window)
    if big:
        ct, seg = nib.load(str(DATA / SAMPLES["ct"][0])), nib.load(str(DATA / SAMPLES["ct"][1]))
        data = np.asarray(ct.dataobj).T
        factors = (big / data.shape[0], 512 / data.shape[1], 512 / data.shape[2])
        image = ndi.zoom(data, factors, order=1).astype(np.int16)
        ref = ndi.zoom(np.asarray(seg.dataobj).T, factors, order=0)
        affine = ct.affine @ np.diag([1 / factors[2], 1 / factors[1], 1 / factors[0], 1])
        nib.save(nib.Nifti1Image(image.T, affine), str(root / "big.nii.gz"))
        nib.save(nib.Nifti1Image(seeds_from(ref).T.astype(np.uint8), affine), str(root / "big_seeds.nii.gz"))
        inputs["big"] = (root / "big.nii.gz", root / "big_seeds.nii.gz", "ct-abdomen")
    return inputs


def write_plan(path: Path, steps: list[str], cases: list[tuple[str, tuple[Path, Path, str]]]) -> Path:
    plan = {"steps": steps, "export": {"format": "nnunet", "dataset_id": 1, "dataset_name": "Bench"},
            "class_names": {"1": "spleen", "2": "kidney_right", "3": "kidney_left", "5": "liver"},
            "cases": [{"name": n, "image": str(i), "seeds": str(s), "window": w} for n, (i, s, w) in cases]}
    path.write_text(json.dumps(plan, indent=1))
    return path


def run(plan: Path, outdir: Path, model_args: list[str], extra: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "napari_sammed.cli", "batch", str(plan), str(outdir), *model_args,
                           *extra], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"batch failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
    records = [json.loads(p.read_text()) for p in outdir.glob("*/done.json")]
    per_process: dict[int, float] = {}
    for r in records:
        per_process[r["pid"]] = max(per_process.get(r["pid"], 0.0), r.get("peak_rss_mib_in_process") or 0.0)
    return {"wall": wall, "cases": len(records), "case_seconds": sum(r["seconds"] for r in records),
            "rss": sorted(per_process.values()), "loads": sorted({r["engine_loads_in_process"] for r in records})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kind", default="weight-free", help="weight-free, or '' for LiteMedSAM (bundled)")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", default="propagate,samaug,export")
    parser.add_argument("--big", type=int, default=0, help="also one local case of S x 512 x 512 slices")
    args = parser.parse_args()
    model_args = ["--device", args.device] + (["--kind", args.kind] if args.kind else []) + \
        (["--checkpoint", args.checkpoint] if args.checkpoint else [])
    steps = args.steps.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        inputs = write_inputs(root, args.big or None)
        names = list(SAMPLES)
        cases = [(f"case{i:02d}_{names[i % 2]}", inputs[names[i % 2]]) for i in range(args.cases)]
        plan = write_plan(root / "plan.json", steps, cases)
        local = run(plan, root / "local", model_args, [])
        cluster = run(plan, root / "cluster", model_args, ["--cluster", f"local:{args.workers}"])
        big = None
        if args.big:
            big = run(write_plan(root / "big.json", steps, [("big", inputs["big"])]), root / "big", model_args, [])
    engine = args.checkpoint or ("weight-free" if args.kind == "weight-free" else "LiteMedSAM")
    print(f"\n{args.cases} cases (CT 30x101x122 and MR 20x91x117 alternating), steps {', '.join(steps)}, "
          f"{engine} engine, {args.device}, {os.cpu_count()} CPU cores\n")
    print("| run | wall (s) | cases/min | sum of case times (s) | peak RSS per process (MiB) | model loads per process |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in (("one process (`batch PLAN OUT`)", local),
                     (f"LocalCluster({args.workers}) (`--cluster local:{args.workers}`)", cluster)):
        print(f"| {label} | {r['wall']:.1f} | {60 * r['cases'] / r['wall']:.1f} | {r['case_seconds']:.1f} | "
              f"{', '.join(f'{v:.0f}' for v in r['rss'])} | {', '.join(map(str, r['loads']))} |")
    if big:
        print(f"| one case {args.big}x512x512 int16, one process | {big['wall']:.1f} | {60 / big['wall']:.2f} | "
              f"{big['case_seconds']:.1f} | {big['rss'][0]:.0f} | {big['loads'][0]} |")


if __name__ == "__main__":
    main()
