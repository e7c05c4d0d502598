"""SAMAug over files: a 2D image, a folder of images, or a volume -> maps on disk (resumable)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .amg import AmgSettings
from .atomic import atomic_write
from .inputs import InputError
from .io import IMAGE_SUFFIXES, NIFTI_SUFFIXES, TIFF_SUFFIXES, file_stem, is_zarr, read_volume
from .samaug import samaug_slice
from .windowing import resolve_window

MAPS = ("seg_prior", "boundary_prior", "augmented")


OUTPUT_SUFFIXES = tuple(f"_{m}.tif" for m in MAPS) + ("_augmented.png",)


def _is_our_output(path: Path, names: set[str]) -> bool:
    """A map this command wrote: ``<stem>_<map>`` where ``<stem>`` is another input's stem or
    name, or where its ``<stem>_samaug.json`` sits beside it."""
    name = path.name
    for suffix in OUTPUT_SUFFIXES:
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            if stem in names or (path.parent / f"{stem}_samaug.json").is_file():
                return True
    return False


def _inputs(path: Path, outdir: Path) -> list[Path]:
    """The images of a folder (not the output folder itself, nor, when ``outdir`` is the folder
    itself, the maps an earlier run wrote there), or ``[path]``."""
    if path.is_dir() and not is_zarr(path):
        out = outdir.resolve()
        found = [p for p in sorted(path.iterdir())
                 if p.name.lower().endswith(IMAGE_SUFFIXES + TIFF_SUFFIXES + NIFTI_SUFFIXES)
                 and p.resolve() != out]  # not recursive: maps in a subfolder are never listed
        if path.resolve() == out:
            names = {file_stem(p) for p in found} | {p.name for p in found}
            found = [p for p in found if not _is_our_output(p, names - {file_stem(p), p.name})]
        if not found:
            raise InputError(path, "no images (PNG, JPEG, BMP, TIFF, NIfTI) in this folder")
        return found
    return [path]


def output_stems(inputs: list[Path]) -> dict[Path, str]:
    """The name each input's maps start with: its stem, or its whole file name when two inputs
    share a stem (``a.png`` and ``a.tif`` -> ``a.png_*`` and ``a.tif_*``), so none overwrites another."""
    counts: dict[str, int] = {}
    for path in inputs:
        counts[file_stem(path).lower()] = counts.get(file_stem(path).lower(), 0) + 1
    return {path: file_stem(path) if counts[file_stem(path).lower()] == 1 else path.name for path in inputs}


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
    inputs = _inputs(Path(source), outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    stems = output_stems(inputs)
    for n, path in enumerate(inputs):
        stem = stems[path]
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
        atomic_write(outdir / f"{stem}_samaug.json", lambda tmp, m=meta: Path(tmp).write_text(json.dumps(m, indent=2)))
        if progress:
            progress(n + 1, len(inputs))
    return written
