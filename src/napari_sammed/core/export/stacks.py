"""Label (and image) stacks with scale metadata: TIFF, zarr, or a folder of 8-bit PNG slices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError, NeedsOption
from ..io.qc import save_trace
from ..io.write import write_tiff, zarr_group
from .case import ExportCase
from .staging import Staging, writing

FORMATS = ("tiff", "zarr", "png")


def export_stack(case: ExportCase, folder: str | Path, fmt: str = "tiff", include_image: bool = False,
                 overwrite: bool = False) -> list[Path]:
    """``<folder>/<case>_labels.tif`` (+ ``_image.tif``), ``<case>.zarr`` or ``<case>_labels/NNNN.png``,
    with ``<case>_<format>_provenance.json``; all written at once (staged) or not at all."""
    case.validate()
    if fmt not in FORMATS:
        raise InputError(None, f"stack format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if fmt == "png" and case.labels.max() > 255:
        raise InputError(None, f"labels go up to {int(case.labels.max())}: 8-bit PNG holds 0-255; use tiff or zarr")
    folder = Path(folder)
    with writing(folder):  # locked: two exports of one case never interleave their renames
        return _export(case, folder, fmt, include_image, overwrite)


def _export(case: ExportCase, folder: Path, fmt: str, include_image: bool, overwrite: bool) -> list[Path]:
    names = {"tiff": [f"{case.name}_labels.tif"] + ([f"{case.name}_image.tif"] if include_image else []),
             "zarr": [f"{case.name}.zarr"], "png": [f"{case.name}_labels"]}[fmt]
    names.append(f"{case.name}_{fmt}_provenance.json")
    clashes = [n for n in names if (folder / n).exists()]
    if clashes and not overwrite:
        raise NeedsOption(f"{folder / clashes[0]} exists; pass {{overwrite}} to replace it")
    with Staging(folder, replace=overwrite) as staging:
        if fmt == "tiff":
            write_tiff(staging.path(names[0]), case.labels, case.meta, labels=True)
            if include_image:
                write_tiff(staging.path(names[1]), case.image, case.meta)
        elif fmt == "zarr":
            arrays = {"labels": case.labels} | ({"image": case.image} if include_image else {})
            zarr_group(staging.path(names[0]), arrays, case.meta)
        else:
            _png_slices(staging, names[0], case.labels)
        (staging.path(names[-1])).write_text(json.dumps(case.provenance({"format": fmt}), indent=2))
        staging.index(names[-1])  # in place last: a stack with its provenance is a whole one
        if case.trace:
            save_trace(case.trace, staging.path(f"{case.name}_qc"))
        for name in clashes:  # a folder (zarr, PNG stack) is replaced as a whole, restored on failure
            if (folder / name).is_dir():
                staging.replace_tree(name)
        staging.commit()
    return [folder / n for n in names]


def _png_slices(staging: Staging, name: str, labels: np.ndarray) -> None:
    from skimage.io import imsave

    planes = labels[None] if labels.ndim == 2 else labels
    for k, plane in enumerate(planes):
        imsave(str(staging.path(f"{name}/{k:04d}.png")), plane.astype(np.uint8), check_contrast=False)
