"""SAMAug over files: a 2D image, a folder of images, or a volume -> maps on disk (resumable)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .amg import AmgSettings
from .atomic import atomic_write
from .io import IMAGE_SUFFIXES, NIFTI_SUFFIXES, TIFF_SUFFIXES, file_stem, is_zarr, read_volume
from .samaug import samaug_slice
from .windowing import resolve_window

MAPS = ("seg_prior", "boundary_prior", "augmented")


def _inputs(path: Path) -> list[Path]:
    if path.is_dir() and not is_zarr(path):
        found = sorted(p for p in path.iterdir() if p.name.lower().endswith(IMAGE_SUFFIXES + TIFF_SUFFIXES + NIFTI_SUFFIXES))
        if not found:
            raise ValueError(f"no images in {path}")
        return found
    return [path]


def run_samaug(
    source: str | Path,
    outdir: str | Path,
    engine,
    window=None,
    settings: AmgSettings = AmgSettings(),
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write ``<stem>_{seg_prior,boundary_prior,augmented}.tif`` (+ ``_augmented.png`` for 2D).

    Volumes give (Z, H, W[, 3]) stacks along z. Outputs that exist are skipped, so a rerun
    resumes; each file is written atomically.
    """
    import tifffile
    from skimage import io as skio

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    inputs = _inputs(Path(source))
    for n, path in enumerate(inputs):
        stem = file_stem(path)
        targets = {m: outdir / f"{stem}_{m}.tif" for m in MAPS}
        if all(t.exists() for t in targets.values()):
            if progress:
                progress(n + 1, len(inputs))
            continue
        if path.name.lower().endswith(IMAGE_SUFFIXES):
            data = skio.imread(str(path))
            if data.ndim == 3 and data.shape[-1] == 4:
                data = data[..., :3]
        else:
            data = read_volume(path).data
        is_volume = data.ndim == 3 and data.shape[-1] != 3
        slices = list(data) if is_volume else [data]
        win = resolve_window(data, window) if data.dtype != np.uint8 else None
        results = [samaug_slice(engine, s, win, settings) for s in slices]
        stack = {
            "seg_prior": np.stack([r.seg_prior for r in results]),
            "boundary_prior": np.stack([r.boundary_prior for r in results]).astype(np.uint8),
            "augmented": np.stack([r.augmented for r in results]),
        }
        for name, array in stack.items():
            array = array if is_volume else array[0]
            atomic_write(targets[name], lambda tmp, a=array: tifffile.imwrite(tmp, a))
            written.append(targets[name])
        if not is_volume:
            png = outdir / f"{stem}_augmented.png"
            preview = (np.clip(stack["augmented"][0], 0, 1) * 255).astype(np.uint8)
            atomic_write(png, lambda tmp, a=preview: skio.imsave(tmp, a, check_contrast=False))
            written.append(png)
        meta = {"source": str(path), "engine": engine.describe(), "amg": settings.as_dict(),
                "window": None if win is None else win.as_dict(),
                "masks_per_slice": [len(r.masks.masks) for r in results], "method": results[0].masks.method}
        (outdir / f"{stem}_samaug.json").write_text(json.dumps(meta, indent=2))
        if progress:
            progress(n + 1, len(inputs))
    return written
