"""SAMAug for training: does a small U-Net learn better from SAM's prior maps than from the raw slice?

SAMAug (Zhang et al. 2023, "Input Augmentation with SAM") adds the segmentation prior and the
boundary prior of SAM's automatic masks to channels 1 and 2 of the image, trains on raw and
augmented inputs, and at test time keeps the prediction the network is more confident about.
Here, with the bundled LiteMedSAM on the CPU, three arms are compared over several seeds:

    (a) raw      a U-Net trained and tested on the raw slice (grey on three channels)
    (b) samaug   the same U-Net trained and tested on the augmented slice [I, I + S, I + B]
    (c) choice   per test slice, the prediction of (a) or (b) with the lower mean pixel entropy

Split (train few-shot on one patient, test on others):
    train   the 30 axial slices of the sample CT (example_ct_sm + example_seg, TotalSegmentator)
    test 1  the two 512x512 AMOS CT slices of SAM-Med2D's data_demo (other patients); only liver
            and spleen are annotated there, so only they are scored
    test 2  the 20 axial slices of the sample MR (another patient, another modality), all four organs

    python benchmarks/bench_samaug_training.py [--seeds 3] [--steps 200] [--threads N] [--quick]

Priors are cached under /tmp (``--cache``); the first run spends ~8 s per slice on them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "napari_sammed" / "_data"
DEMO_DIRS = (Path("/work/shared/data/sammed2d/data_demo"), ROOT / "tests" / "data" / "sammed2d" / "data_demo")
CACHE = Path("/tmp/napari_sammed_bench/samaug_priors")

#: Class index -> (name, TotalSegmentator label in the sample volumes, data_demo mask name).
ORGANS = {1: ("spleen", 1, "spleen"), 2: ("kidney R", 2, "kidney_right"), 3: ("kidney L", 3, "kidney_left"),
          4: ("liver", 5, "liver")}
N_CLASSES = len(ORGANS) + 1
SIZE = 128
AMOS_CT = ("amos_0004_75", "amos_0006_90")  # the data_demo CT slices that show these organs


# ---------------------------------------------------------------- data


@dataclass
class Sample:
    """One preprocessed slice: uint8 grey (SIZE, SIZE), labels (SIZE, SIZE) in 0..4, and its name."""

    image: np.ndarray
    labels: np.ndarray
    name: str
    scored: tuple[int, ...]  # classes annotated in the source (others are not scored)


def body_box(body: np.ndarray) -> tuple[int, int, int, int]:
    """Square (r0, r1, c0, c1) around the largest component of ``body`` (may reach outside the slice)."""
    from scipy import ndimage

    lab, n = ndimage.label(ndimage.binary_opening(body, iterations=2))  # opening: off the table
    if n == 0:
        return 0, body.shape[0], 0, body.shape[1]
    largest = ndimage.binary_fill_holes(lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1))
    rows, cols = np.nonzero(largest)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    side = max(r1 - r0, c1 - c0)
    rc, cc = (r0 + r1) // 2, (c0 + c1) // 2
    return rc - side // 2, rc - side // 2 + side, cc - side // 2, cc - side // 2 + side


def crop_resize(image: np.ndarray, labels: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Crop the square ``box`` (zero-padded where it leaves the slice) and resize to SIZE x SIZE."""
    from skimage.transform import resize

    r0, r1, c0, c1 = box
    pad = max(0, -r0, -c0, r1 - image.shape[0], c1 - image.shape[1])
    img = np.pad(image, pad)[r0 + pad : r1 + pad, c0 + pad : c1 + pad]
    lab = np.pad(labels, pad)[r0 + pad : r1 + pad, c0 + pad : c1 + pad]
    img = resize(img.astype(np.float32), (SIZE, SIZE), order=1, preserve_range=True, anti_aliasing=True)
    lab = resize(lab, (SIZE, SIZE), order=0, preserve_range=True, anti_aliasing=False)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), lab.astype(np.int64)


def to_classes(seg: np.ndarray) -> np.ndarray:
    """TotalSegmentator labels -> class indices 0..4 (other structures are background)."""
    out = np.zeros(seg.shape, np.int64)
    for cls, (_, label, _) in ORGANS.items():
        out[seg == label] = cls
    return out


def volume_samples(image_file: str, seg_file: str, every: int = 1) -> list[Sample]:
    """Axial slices of a sample volume, windowed as the plugin does ("auto"), cropped to the body."""
    from skimage.filters import threshold_otsu

    from napari_sammed.core.io.read import read_volume
    from napari_sammed.core.io.windowing import apply_window, looks_like_ct, resolve_window

    vol = read_volume(SAMPLE / image_file).data
    seg = to_classes(read_volume(SAMPLE / seg_file).data)
    grey = apply_window(vol, resolve_window(vol, "auto"))
    is_ct = looks_like_ct(vol)
    out = []
    for z in range(0, len(vol), every):
        # The body sets the crop (so patients of different size and field of view come out alike):
        # above -500 HU on a CT as on the AMOS PNGs; above half Otsu's threshold on an MR.
        body = vol[z] > -500 if is_ct else grey[z] > threshold_otsu(grey[z]) / 2
        img, lab = crop_resize(grey[z], seg[z], body_box(body))
        out.append(Sample(img, lab, f"{Path(image_file).name.split('.')[0]}[{z}]", tuple(ORGANS)))
    return out


def demo_dir() -> Path:
    for folder in DEMO_DIRS:
        if (folder / "images").is_dir():
            return folder
    raise FileNotFoundError(f"SAM-Med2D data_demo not found in {[str(d) for d in DEMO_DIRS]}")


def png_to_hu(grey: np.ndarray) -> np.ndarray:
    """Approximate HU of a data_demo CT PNG from two label-free landmarks of its histogram.

    The PNGs are a wide linear window of the CT (air ~80, soft tissue ~160, padding 0), so the
    air peak (-1000 HU) and the soft-tissue peak (~+50 HU) fix the line; the soft-tissue window of
    the training CT is then applied to it.
    """
    hist = np.bincount(grey.ravel(), minlength=256).astype(float)
    hist[0] = 0  # the padding outside the scanner's field of view
    air = int(np.argmax(hist[:128]))
    soft = air + 40 + int(np.argmax(hist[air + 40 :]))
    return -1000.0 + (grey.astype(np.float32) - air) * 1050.0 / (soft - air)


def amos_samples() -> list[Sample]:
    """The data_demo AMOS CT slices, upright, in HU, soft-tissue window, cropped to the body."""
    from PIL import Image

    from napari_sammed.core.io.windowing import Window, apply_window

    folder = demo_dir()
    out = []
    for name in AMOS_CT:
        # The PNGs lie upside down against the display order (table at the top): flip them.
        grey = np.asarray(Image.open(folder / "images" / f"{name}.png").convert("L"))[::-1]
        labels = np.zeros(grey.shape, np.int64)
        scored = []
        for cls, (_, _, mask_name) in ORGANS.items():
            for path in sorted((folder / "masks").glob(f"{name}_{mask_name}_*.png")):
                labels[np.asarray(Image.open(path))[::-1] > 0] = cls
                scored.append(cls)
        hu = png_to_hu(grey)
        img = apply_window(hu, Window.preset("ct-soft-tissue"))
        img, lab = crop_resize(img, labels, body_box(hu > -500))
        out.append(Sample(img, lab, name, tuple(sorted(set(scored)))))
    return out


# ---------------------------------------------------------------- SAMAug priors (cached)


@dataclass
class Priors:
    """SAMAug maps of one slice: segmentation prior, boundary prior (SIZE, SIZE) and the masks."""

    seg: np.ndarray
    bnd: np.ndarray
    masks: np.ndarray  # (M, SIZE, SIZE) bool


class PriorMaker:
    """LiteMedSAM automatic masks -> SAMAug priors, cached on disk by image content."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.engine = None
        self.computed = 0

    def __call__(self, image: np.ndarray) -> Priors:
        import inspect

        from napari_sammed.core.engine import automatic_masks

        # The module's source is in the key: a change to the proposals must not reuse old priors.
        recipe = json.dumps(automatic_masks.AmgSettings().as_dict()) + inspect.getsource(automatic_masks)
        key = hashlib.sha1(image.tobytes() + recipe.encode()).hexdigest()[:20]
        path = self.cache / f"{key}.npz"
        if path.exists():
            z = np.load(path)
            return Priors(z["seg"], z["bnd"], z["masks"])
        if self.engine is None:
            import napari_sammed as ns

            self.engine = ns.SliceEngine(ns.load_model(device="cpu"))
        from napari_sammed.core.engine.samaug_priors import samaug_slice

        result = samaug_slice(self.engine, image, None)  # uint8 already windowed: no window
        priors = Priors(result.seg_prior, result.boundary_prior, result.masks.masks)
        self.cache.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, seg=priors.seg, bnd=priors.bnd, masks=priors.masks)
        self.computed += 1
        return priors


def stack_inputs(samples: list[Sample], priors: list[Priors]) -> torch.Tensor:
    """(N, 3, H, W): grey in [0, 1], segmentation prior, boundary prior (composed per arm later)."""
    return torch.from_numpy(np.stack([
        np.stack([s.image.astype(np.float32) / 255.0, p.seg, p.bnd]) for s, p in zip(samples, priors, strict=True)
    ])).float()


def arm_input(planes: torch.Tensor, arm: str) -> torch.Tensor:
    """The network input of an arm from (N, 3, H, W) [I, S, B] planes."""
    grey, seg, bnd = planes[:, 0:1], planes[:, 1:2], planes[:, 2:3]
    if arm == "raw":
        return grey.expand(-1, 3, -1, -1)
    if arm == "samaug":
        return torch.cat([grey, grey + seg, grey + bnd], 1)  # SAMAug: S onto channel 1, B onto 2
    raise ValueError(f"unknown arm {arm!r}")


# ---------------------------------------------------------------- the network


def conv_block(cin: int, cout: int) -> nn.Sequential:
    # GroupNorm, not BatchNorm: batches are small and the test domain differs from the training one.
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(4, cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(4, cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A small 2D U-Net: ``depth`` poolings, ``base`` channels doubling at each, logits per class."""

    def __init__(self, in_channels: int = 3, n_classes: int = N_CLASSES, base: int = 16, depth: int = 4) -> None:
        super().__init__()
        chans = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([conv_block(in_channels, chans[0])] +
                                  [conv_block(chans[i], chans[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in range(depth)])
        self.merge = nn.ModuleList([conv_block(2 * chans[i], chans[i]) for i in range(depth)])
        self.head = nn.Conv2d(chans[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for i in reversed(range(len(self.up))):
            x = self.merge[i](torch.cat([skips.pop(), self.up[i](x)], 1))
        return self.head(x)


def random_affine(planes: torch.Tensor, labels: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Light geometric augmentation: scale 0.85-1.15, rotation +-10 deg, shift +-8 %.

    No flips: left and right tell spleen from liver and the two kidneys apart.
    """
    n = len(planes)
    u = torch.rand(n, 4, generator=gen) * 2 - 1
    scale, angle, shift = 1 + 0.15 * u[:, 0], math.radians(10) * u[:, 1], 0.08 * u[:, 2:]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(planes.shape), align_corners=False)
    planes = F.grid_sample(planes, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    onehot = F.one_hot(labels, N_CLASSES).permute(0, 3, 1, 2).float()
    labels = F.grid_sample(onehot, grid, mode="nearest", padding_mode="zeros", align_corners=False).argmax(1)
    return planes, labels


def intensity_jitter(planes: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Contrast x0.85-1.15 and brightness +-0.08 on the grey plane only (the priors are SAM's)."""
    n = len(planes)
    gain = 1 + 0.15 * (torch.rand(n, 1, 1, generator=gen) * 2 - 1)
    bias = 0.08 * (torch.rand(n, 1, 1, generator=gen) * 2 - 1)
    planes = planes.clone()
    planes[:, 0] = (planes[:, 0] * gain + bias).clamp(0, 1)
    return planes


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + soft Dice over the organ classes (Dice keeps the small kidneys in play)."""
    probs = logits.softmax(1)[:, 1:]
    onehot = F.one_hot(labels, N_CLASSES).permute(0, 3, 1, 2).float()[:, 1:]
    inter = (probs * onehot).sum((0, 2, 3))
    dice = (2 * inter + 1) / (probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)
    return F.cross_entropy(logits, labels) + (1 - dice).mean()


def train(planes: torch.Tensor, labels: torch.Tensor, arm: str, seed: int, steps: int, batch: int = 8,
          lr: float = 2e-3) -> UNet:
    """Train one U-Net on ``arm``'s input; the seed fixes initialisation, batches and augmentation."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = UNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    net.train()
    for _ in range(steps):
        idx = torch.randint(len(planes), (batch,), generator=gen)
        x, y = random_affine(planes[idx], labels[idx], gen)
        x = arm_input(intensity_jitter(x, gen), arm)
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@torch.inference_mode()
def predict_probs(net: UNet, inputs: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) softmax probabilities."""
    return torch.cat([net(inputs[i : i + 8]).softmax(1) for i in range(0, len(inputs), 8)])


def mean_entropy(probs: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) probabilities -> (N,) mean pixel entropy (lower: more confident)."""
    return -(probs * probs.clamp_min(1e-8).log()).sum(1).mean((1, 2))


def choose_by_confidence(probs_a: torch.Tensor, probs_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SAMAug's test-time choice: per image, the probabilities with the lower mean entropy.

    Returns the chosen (N, C, H, W) probabilities and (N,) bool, True where ``probs_b`` won.
    """
    b_wins = mean_entropy(probs_b) < mean_entropy(probs_a)
    return torch.where(b_wins[:, None, None, None], probs_b, probs_a), b_wins


# ---------------------------------------------------------------- metrics


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    denom = pred.sum() + ref.sum()
    return 1.0 if denom == 0 else float(2 * (pred & ref).sum() / denom)


def organ_dice(pred: np.ndarray, samples: list[Sample]) -> dict[int, list[float]]:
    """Dice per organ over the test slices where the organ is annotated and present."""
    out: dict[int, list[float]] = {cls: [] for cls in ORGANS}
    for p, s in zip(pred, samples, strict=True):
        for cls in s.scored:
            if (s.labels == cls).any():
                out[cls].append(dice(p == cls, s.labels == cls))
    return out


def outline(mask: np.ndarray) -> np.ndarray:
    from skimage.segmentation import find_boundaries

    return find_boundaries(mask, mode="inner")


def prior_quality(samples: list[Sample], priors: list[Priors], tol: int = 2) -> dict[int, dict[str, float]]:
    """Per organ: IoU of the best single automatic mask, and the boundary prior's recall of the
    organ's outline within ``tol`` px; under key 0 the boundary prior's precision against the
    union of all annotated outlines (a lower bound: SAM outlines unannotated structures too)."""
    from scipy import ndimage

    iou = {cls: [] for cls in ORGANS}
    recall = {cls: [] for cls in ORGANS}
    prec_hit = prec_all = 0
    near = np.ones((2 * tol + 1, 2 * tol + 1), bool)
    for s, p in zip(samples, priors, strict=True):
        bnd = p.bnd > 0
        bnd_near = ndimage.binary_dilation(bnd, near)
        ref_outlines = np.zeros_like(bnd)
        for cls in s.scored:
            ref = s.labels == cls
            if not ref.any():
                continue
            inter = (p.masks & ref).reshape(len(p.masks), -1).sum(1)
            union = (p.masks | ref).reshape(len(p.masks), -1).sum(1)
            iou[cls].append(float((inter / np.maximum(union, 1)).max()) if len(p.masks) else 0.0)
            ref_line = outline(ref)
            recall[cls].append(float(bnd_near[ref_line].mean()))
            ref_outlines |= ref_line
        if ref_outlines.any():
            prec_hit += int((bnd & ndimage.binary_dilation(ref_outlines, near)).sum())
            prec_all += int(bnd.sum())
    out = {cls: {"iou": float(np.mean(iou[cls])), "recall": float(np.mean(recall[cls])), "n": len(iou[cls])}
           for cls in ORGANS if iou[cls]}
    out[0] = {"precision": prec_hit / max(prec_all, 1),
              "masks": float(np.mean([len(p.masks) for p in priors]))}
    return out


# ---------------------------------------------------------------- the run


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.3f}"


def result_table(results: dict[str, dict[str, list[dict[int, float]]]], test: str, samples: list[Sample]) -> str:
    """Markdown: per arm, per organ Dice (mean over slices, then mean ± sd over seeds), macro mean."""
    organs = [cls for cls in ORGANS if any(cls in s.scored and (s.labels == cls).any() for s in samples)]
    head = "| arm | " + " | ".join(f"{ORGANS[c][0]} (n={sum((s.labels == c).any() and c in s.scored for s in samples)})"
                                   for c in organs) + " | mean |"
    lines = [head, "|---|" + "---:|" * (len(organs) + 1)]
    for arm, per_seed in results[test].items():
        cells = [fmt([seed[c] for seed in per_seed]) for c in organs]
        means = [float(np.mean([seed[c] for c in organs])) for seed in per_seed]
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {fmt(means)} |")
    return "\n".join(lines)


def prior_table(quality: dict[str, dict[int, dict[str, float]]]) -> str:
    lines = ["| slices | organ | n | best single mask IoU | boundary recall (2 px) |",
             "|---|---|---:|---:|---:|"]
    for test, q in quality.items():
        for cls in ORGANS:
            if cls in q:
                lines.append(f"| {test} | {ORGANS[cls][0]} | {q[cls]['n']} | {q[cls]['iou']:.3f} | "
                             f"{q[cls]['recall']:.3f} |")
    lines += ["", "| slices | automatic masks per slice | boundary precision vs annotated outlines (2 px) |",
              "|---|---:|---:|"]
    lines += [f"| {test} | {q[0]['masks']:.1f} | {q[0]['precision']:.3f} |" for test, q in quality.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 30 steps, every 5th slice")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default); "
                        "1 is steadier on a machine another job keeps busy")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    every = 5 if args.quick else 1
    seeds, steps = (1, 30) if args.quick else (args.seeds, args.steps)
    start = time.perf_counter()

    train_set = volume_samples("example_ct_sm.nii.gz", "example_seg.nii.gz", every)
    tests = {"AMOS CT (data_demo)": amos_samples(),
             "sample MR": volume_samples("example_mr_sm.nii.gz", "example_seg_mr.nii.gz", every)}
    make = PriorMaker(args.cache)
    train_priors = [make(s.image) for s in train_set]
    test_priors = {name: [make(s.image) for s in samples] for name, samples in tests.items()}
    t_priors = time.perf_counter() - start
    print(f"priors: {make.computed} computed, {sum(map(len, tests.values())) + len(train_set) - make.computed} "
          f"cached, {t_priors:.0f} s", file=sys.stderr)

    planes = stack_inputs(train_set, train_priors)
    labels = torch.from_numpy(np.stack([s.labels for s in train_set]))
    test_planes = {name: stack_inputs(tests[name], test_priors[name]) for name in tests}
    results = {name: {"raw": [], "samaug": [], "choice": []} for name in tests}
    chosen = {name: [] for name in tests}
    t_train = time.perf_counter()
    for seed in range(seeds):
        nets = {arm: train(planes, labels, arm, seed, steps, args.batch) for arm in ("raw", "samaug")}
        for name, samples in tests.items():
            probs = {arm: predict_probs(nets[arm], arm_input(test_planes[name], arm)) for arm in nets}
            probs["choice"], b_wins = choose_by_confidence(probs["raw"], probs["samaug"])
            chosen[name].append(float(b_wins.float().mean()))
            for arm, p in probs.items():
                per_organ = organ_dice(p.argmax(1).numpy(), samples)
                results[name][arm].append({c: float(np.mean(v)) for c, v in per_organ.items() if v})
        print(f"seed {seed}: {time.perf_counter() - t_train:.0f} s", file=sys.stderr)
    t_train = time.perf_counter() - t_train

    quality = {name: prior_quality(tests[name], test_priors[name]) for name in tests}
    quality["train CT"] = prior_quality(train_set, train_priors)
    total = time.perf_counter() - start
    cmd = "python benchmarks/bench_samaug_training.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"\n`{cmd.strip()}` on {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; {len(train_set)} train slices, "
          f"{seeds} seeds x {steps} steps x batch {args.batch}, {SIZE}x{SIZE} inputs")
    print(f"runtime {total:.0f} s (priors {t_priors:.0f} s, {make.computed} computed; training + test {t_train:.0f} s)\n")
    for name, samples in tests.items():
        print(f"### Dice on {name}: {len(samples)} slices "
              f"(choice took the SAMAug model on {100 * np.mean(chosen[name]):.0f} % of them)\n")
        print(result_table(results, name, samples) + "\n")
    print("### SAMAug priors on the same slices (LiteMedSAM region-box automatic masks)\n")
    print(prior_table(quality))


if __name__ == "__main__":
    main()
