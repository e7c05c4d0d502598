"""SAMAug over files: a 2D image, a folder of images, or a volume -> maps on disk (resumable)."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..engine.samaug_priors import augmented_uint8, samaug_slice
from ..errors import InputError, InputWarning
from ..export.case import Priors
from ..io.atomic import atomic_write, temp_file
from ..io.read import (
    IMAGE_SUFFIXES,
    NIFTI_SUFFIXES,
    TIFF_SUFFIXES,
    file_stem,
    is_zarr,
    read_image,
    read_volume,
)
from ..io.windowing import apply_window, describe_window, resolve_window
from ..settings import AmgSettings
from ..volume.embeddings import VolumeEmbeddings

log = logging.getLogger(__name__)
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
    """Write ``<stem>_{seg_prior,boundary_prior,augmented}.tif`` (+ ``_augmented.png`` for 2D)
    and ``<stem>_samaug.json`` for a 2D image, each image of a folder, or a volume.

    Volumes give (Z, H, W[, 3]) stacks along z, written slice by slice. Outputs that exist are
    skipped, so a rerun resumes; each file is written atomically. ``progress(done, total)``
    counts the slices of a single input, else the inputs of a folder. In a folder, an image
    that cannot be read is skipped with an :class:`InputWarning` and the others go on; the
    first such image is then raised as an :class:`InputError` (nothing else is lost).
    """
    outdir = Path(outdir)
    inputs = _inputs(Path(source), outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    stems = output_stems(inputs)
    single = len(inputs) == 1
    skipped: list[InputError] = []
    for n, path in enumerate(inputs):
        stem = stems[path]
        if not all((outdir / f"{stem}_{m}.tif").exists() for m in MAPS):
            log.info(f"reading {path}")
            try:
                data = _read_input(path)
            except InputError as error:
                if single:
                    raise
                warnings.warn(InputWarning(error.path, f"{error.what}; skipped"), stacklevel=2)
                skipped.append(error)
            else:
                written += write_maps(data, path, outdir, stem, engine, window, settings,
                                      progress=progress if single else None)
        if progress and not single:
            progress(n + 1, len(inputs))
    if skipped:
        more = f" (and {len(skipped) - 1} more unreadable images)" if len(skipped) > 1 else ""
        raise InputError(skipped[0].path, f"{skipped[0].what}{more}; skipped, and the maps of the other "
                                          f"{len(inputs) - len(skipped)} images are in {outdir}")
    return written


def _read_input(path: Path) -> np.ndarray:
    """A 2D image (RGBA without its alpha) or a volume, as :func:`write_maps` takes it."""
    if not path.name.lower().endswith(IMAGE_SUFFIXES):
        return read_volume(path).data
    data = read_image(path)
    return data[..., :3] if data.ndim == 3 and data.shape[-1] == 4 else data


def samaug_volume(embeddings: VolumeEmbeddings, source: Path, outdir: Path,
                  settings: AmgSettings) -> list[Path]:
    """:func:`write_maps` of an opened volume along z, reusing its ``embeddings`` (bulk runs:
    the ones propagation computed, cached on disk)."""
    return write_maps(embeddings.volume, source, outdir, file_stem(source), embeddings.engine, embeddings.window,
                      settings, embeddings=embeddings)


def _slice_results(volume: np.ndarray, is_volume: bool, engine, win, settings: AmgSettings,
                   embeddings: VolumeEmbeddings | None = None):
    """(index, SamAugResult) for every slice of ``volume`` (a 2D image as one slice), embedding in
    batches; given ``embeddings`` along z (bulk runs), those are reused and filled."""
    for begin in range(0, len(volume), engine.batch_size):
        end = min(begin + engine.batch_size, len(volume))
        if embeddings is not None:
            embeddings.compute(embeddings.missing(range(begin, end)))
            batch = [embeddings.get(k) for k in range(begin, end)]
        elif is_volume:
            batch = engine.embed(apply_window(volume[begin:end], win))
        else:  # one 2D image (grey or RGB): samaug_slice prepares and embeds it
            batch = [None]
        for k, embedding in zip(range(begin, end), batch, strict=True):
            yield k, samaug_slice(engine, volume[k], win, settings, embedding=embedding)


def provenance(engine, settings: AmgSettings, win) -> dict:
    """What makes a set of maps: the model, the automatic-mask settings and the window."""
    return {"engine": engine.describe(), "amg": settings.as_dict(), "window": None if win is None else win.as_dict()}


def write_maps(data: np.ndarray, source: Path, outdir: Path, stem: str, engine, window, settings: AmgSettings,
               progress: Callable[[int, int], None] | None = None,
               embeddings: VolumeEmbeddings | None = None) -> list[Path]:
    """The maps of one 2D image or one volume (streamed to disk slice by slice: memory holds one
    slice's masks), then ``<stem>_samaug.json``; ``progress(done, total)`` after every slice.
    ``embeddings`` (of ``data`` along z, ``window`` resolved) are reused instead of embedding anew."""
    import tifffile
    from skimage import io as skio

    outdir.mkdir(parents=True, exist_ok=True)
    win = embeddings.window if embeddings is not None else resolve_window(data, window)
    log.info(describe_window(win))
    is_volume = data.ndim == 3 and data.shape[-1] != 3
    volume = data if is_volume else data[None]
    targets = {m: outdir / f"{stem}_{m}.tif" for m in MAPS}
    temps = {m: temp_file(outdir, ".tif") for m in MAPS}
    writers = {m: tifffile.TiffWriter(temps[m]) for m in MAPS}
    counts, method, augmented = [], None, None
    try:
        for k, result in _slice_results(volume, is_volume, engine, win, settings, embeddings):
            writers["seg_prior"].write(result.seg_prior, contiguous=True, photometric="minisblack")
            writers["boundary_prior"].write(result.boundary_prior.astype(np.uint8), contiguous=True,
                                            photometric="minisblack")
            writers["augmented"].write(result.augmented, contiguous=True, photometric="rgb")
            counts.append(len(result.masks.masks))
            method, augmented = result.masks.method, result.augmented
            if progress:
                progress(k + 1, len(volume))
        for writer in writers.values():
            writer.close()
        for m in MAPS:
            os.replace(temps[m], targets[m])
    finally:
        for m in MAPS:
            writers[m].close()
            temps[m].unlink(missing_ok=True)
    written = list(targets.values())
    if not is_volume:
        png = outdir / f"{stem}_augmented.png"
        preview = augmented_uint8(augmented)
        atomic_write(png, lambda tmp: skio.imsave(tmp, preview, check_contrast=False))
        written.append(png)
    meta = {"source": str(source), **provenance(engine, settings, win), "masks_per_slice": counts, "method": method}
    meta_path = outdir / f"{stem}_samaug.json"
    atomic_write(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
    return [*written, meta_path]


def compute_priors(data: np.ndarray, engine, window, settings: AmgSettings = AmgSettings()) -> Priors:
    """SAMAug's maps of a grey 2D image or a volume (slices along z), in memory, for exports."""
    win = resolve_window(data, window)
    log.info(describe_window(win))
    is_volume = data.ndim == 3
    volume = data if is_volume else data[None]
    seg = np.zeros(volume.shape, np.float32)
    bnd = np.zeros(volume.shape, np.float32)
    aug = np.zeros((*volume.shape, 3), np.uint8)
    for k, result in _slice_results(volume, is_volume, engine, win, settings):
        seg[k], bnd[k], aug[k] = result.seg_prior, result.boundary_prior, augmented_uint8(result.augmented)
    squeeze = (lambda a: a) if is_volume else (lambda a: a[0])
    return Priors(squeeze(seg), squeeze(bnd), squeeze(aug), provenance(engine, settings, win))


def _same_maker(found: dict, wanted: dict) -> bool:
    model = ("kind", "checkpoint_sha256")
    return ({k: found.get("engine", {}).get(k) for k in model} == {k: wanted["engine"].get(k) for k in model}
            and found.get("amg") == wanted["amg"] and found.get("window") == wanted["window"])


def load_priors(folder: str | Path, stem: str, wanted: dict) -> Priors | None:
    """The maps ``napari-sammed samaug`` (or a batch run) wrote for ``stem`` in ``folder``, if
    its ``_samaug.json`` says the same model, automatic-mask settings and window made them."""
    import tifffile

    folder = Path(folder)
    try:
        found = json.loads((folder / f"{stem}_samaug.json").read_text())
        maps = {m: tifffile.imread(folder / f"{stem}_{m}.tif") for m in MAPS}
    except (OSError, ValueError, RecursionError):  # missing, damaged or absurdly nested: compute anew
        return None
    if not isinstance(found, dict) or not _same_maker(found, wanted):
        return None
    made_by = {k: found[k] for k in ("engine", "amg", "window")} | {"reused_from": str(folder / f"{stem}_samaug.json")}
    return Priors(maps["seg_prior"].astype(np.float32), maps["boundary_prior"].astype(np.float32),
                  augmented_uint8(maps["augmented"]), made_by)
