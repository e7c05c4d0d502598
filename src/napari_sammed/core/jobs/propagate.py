"""File-level propagation (what ``napari-sammed propagate`` runs): image + seeds -> labels + QC.

Seeds are either a label volume of the image's shape (every slice where an object has voxels
is one of its seeds) or a JSON file of prompts per object and slice::

    {"objects": {"5": {"15": {"box": [x0, y0, x1, y1], "points": [[x, y]], "labels": [1]}}},
     "stops": {"5": [[22, x, y]], "0": [[3]]}}

Coordinates are slice pixels (x = column, y = row) in the plane of ``axis``; a stop entry is
[slice] (stop every front there) or [slice, x, y] (stop fronts whose box holds the point);
object "0" means every object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..engine.slice_engine import Prompt, SliceEngine
from ..errors import InputError, NeedsOption, about
from ..io.inputs import PromptFile, load_json
from ..io.qc import FrontEnd, TraceRow, object_summary, save_trace
from ..io.read import Volume, file_stem, read_volume
from ..io.write import label_dtype, write_volume
from ..settings import PropagationSettings
from ..volume.embeddings import VolumeEmbeddings
from ..volume.propagation import Propagation, paint_masks, seeds_from_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PropagationReport:
    """What a propagation wrote: the labels, the QC trace files beside them, and the trace itself."""

    output: Path
    trace_files: list[Path]
    voxels_written: int
    rows: list[TraceRow]
    ends: list[FrontEnd] = field(default_factory=list)

    @cached_property
    def objects(self) -> dict[int, dict]:
        """Per object: slice range, why its fronts stopped, the slices QC flagged."""
        return object_summary(self.rows, self.ends)


def read_prompt_file(path: str | Path) -> tuple[dict, dict]:
    """-> ({object: {slice: Prompt}}, stop markers) from the JSON format above (validated)."""
    spec = load_json(path, PromptFile, "prompts JSON file")
    prompts: dict[int, dict[int, Prompt]] = {}
    for object_id, by_slice in spec.objects.items():
        for index, p in by_slice.items():
            labels = p.labels if p.labels is not None else ([1] * len(p.points) if p.points else None)
            prompts.setdefault(int(object_id), {})[int(index)] = Prompt(
                np.asarray(p.points, float) if p.points else None, labels, p.box)
    stops = {int(k): [(int(e[0]), *(float(v) for v in e[1:3])) if len(e) >= 3 else (int(e[0]), None, None)
                      for e in v] for k, v in spec.stops.items()}
    return prompts, stops


def check_prompt(prompt: Prompt, shape: tuple[int, int], where: str, source: str | Path | None = None) -> None:
    """Refuse a prompt that lies outside the (H, W) slice: it would segment nothing."""
    height, width = shape
    if prompt.box is not None:
        x0, y0, x1, y1 = (float(v) for v in prompt.box)
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise InputError(source, f"{where}: box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] lies outside the slice "
                                     f"(x 0-{width}, y 0-{height}; x = column, y = row)")
    if prompt.points is not None:
        for x, y in np.asarray(prompt.points, float).reshape(-1, 2):
            if not (0 <= x < width and 0 <= y < height):
                raise InputError(source, f"{where}: point [{x:g}, {y:g}] lies outside the slice "
                                         f"(x 0-{width}, y 0-{height}; x = column, y = row)")


def seeds_from_prompts(embeddings: VolumeEmbeddings, prompts: dict[int, dict[int, Prompt]],
                       source: str | Path | None = None) -> dict:
    """Segment each prompted slice (objects on one slice in one batched call) into seed masks."""
    by_slice: dict[int, list[tuple[int, Prompt]]] = {}
    for object_id, per_slice in prompts.items():
        for index, prompt in per_slice.items():
            if not 0 <= index < embeddings.n_slices:
                raise InputError(source, f"prompt for object {object_id} on slice {index}: the volume has "
                                         f"{embeddings.n_slices} slices along this axis")
            check_prompt(prompt, embeddings.slice_shape, f"prompt for object {object_id} on slice {index}", source)
            by_slice.setdefault(index, []).append((object_id, prompt))
    seeds: dict[int, dict[int, np.ndarray]] = {}
    for index, entries in sorted(by_slice.items()):
        predictions = embeddings.engine.predict_batch(embeddings.get(index), embeddings.slice_shape,
                                                      [p for _, p in entries])
        for (object_id, _), prediction in zip(entries, predictions, strict=True):
            if not prediction.mask.any():
                raise InputError(source, f"prompt for object {object_id} on slice {index} segments nothing; "
                                         "move or enlarge it")
            seeds.setdefault(object_id, {})[index] = prediction.mask
    return seeds


def run_propagation(
    image: str | Path,
    seeds_path: str | Path,
    output: str | Path,
    engine: SliceEngine,
    window=None,
    axis: str | int = "z",
    settings: PropagationSettings | None = None,
    objects: list[int] | None = None,
    cache_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    memory_slices: int | None = None,
) -> PropagationReport:
    """:func:`propagate_volume` for an image file: read it, window it, embed it lazily.

    ``memory_slices`` bounds the embeddings held in memory when ``cache_dir`` keeps them on disk."""
    from ..io.windowing import describe_window, resolve_window

    check_outputs(output, overwrite)
    log.info(f"reading {image}")
    volume = read_volume(image)
    if volume.data.ndim != 3:
        raise InputError(image, f"propagation needs a 3D image, got shape {volume.data.shape}")
    resolved = resolve_window(volume.data, window)
    log.info(describe_window(resolved))
    embeddings = VolumeEmbeddings(engine, volume.data, resolved, axis, cache_dir, memory_slices=memory_slices)
    return propagate_volume(volume, embeddings, image, seeds_path, output, settings, objects, overwrite, progress)


def check_outputs(output: str | Path, overwrite: bool) -> None:
    """Refuse to replace the labels or their QC trace unless ``overwrite``."""
    for path in (Path(output), *trace_files(output)):
        if path.exists() and not overwrite:
            raise NeedsOption(f"{path} exists; pass {{overwrite}} to replace it")


def propagate_volume(
    volume: Volume,
    embeddings: VolumeEmbeddings,
    image: str | Path,
    seeds_path: str | Path,
    output: str | Path,
    settings: PropagationSettings | None = None,
    objects: list[int] | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> PropagationReport:
    """Propagate seeds through an opened ``volume`` (``embeddings`` of it), write the labels with
    its geometry and the QC trace beside them."""
    check_outputs(output, overwrite)
    output, axis, engine = Path(output), embeddings.axis, embeddings.engine
    if str(seeds_path).lower().endswith(".json"):
        prompts, stops = read_prompt_file(seeds_path)
        if objects:
            prompts = {k: v for k, v in prompts.items() if k in objects}
        log.info(f"embedding the {len({i for v in prompts.values() for i in v})} prompted slices")
        seeds = seeds_from_prompts(embeddings, prompts, seeds_path)
        labels = np.zeros(volume.data.shape, label_dtype(np.array([max(seeds, default=0)])))
        paint_masks(labels, axis, seeds)
    else:
        labels = read_volume(seeds_path).data
        if labels.shape != volume.data.shape:
            raise InputError(seeds_path, f"seed labels have shape {labels.shape}, the image {volume.data.shape}")
        with about(seeds_path):
            labels = labels.astype(label_dtype(labels), copy=True)
        seeds, stops = seeds_from_labels(labels, axis, objects), {}
    if not seeds:
        raise InputError(seeds_path, "no seeds: the seed labels are empty" + (f" for objects {objects}" if objects else ""))
    log.info(f"propagating {len(seeds)} object(s) from {sum(map(len, seeds.values()))} seed slice(s), "
             "embedding slices as the fronts reach them")
    result = Propagation(embeddings, seeds, settings, stops).run(progress)
    written = result.write_into(labels, axis)
    out = write_volume(output, labels, volume.layer_metadata(), overwrite=overwrite)
    provenance = {"image": str(image), "seeds": str(seeds_path), "axis": "zyx"[axis],
                  "engine": engine.describe(), "window": None if embeddings.window is None else embeddings.window.as_dict(),
                  "settings": asdict(result.settings)}
    traces = save_trace(result.trace, trace_files(output)[0], result.ends, {"provenance": provenance})
    return PropagationReport(Path(out), traces, written, result.trace, result.ends)


def trace_files(output: str | Path) -> list[Path]:
    """The QC trace files written beside ``output``: ``<stem>_qc.csv`` and ``<stem>_qc.json``."""
    output = Path(output)
    return [output.parent / f"{file_stem(output)}_qc{suffix}" for suffix in (".csv", ".json")]


def format_report(report: PropagationReport, kind: str) -> str:
    """What ``propagate`` prints: the output, each object's slice range, why its fronts stopped
    and the slices its QC flagged (look at those first)."""
    lines = [f"wrote {report.output} ({report.voxels_written} voxels propagated, {kind})"]
    for object_id, info in sorted(report.objects.items()):
        ends = ", ".join(f"{s['reason']} at {s['slice']}" for s in info["stops"]) or "volume ends"
        flagged = ", ".join(f"{f['slice']} ({f['flag']})" for f in info.get("look_here", []))
        lines.append(f"  object {object_id}: slices {info['first']}-{info['last']}, {info['propagated']} "
                     f"propagated; stopped: {ends}" + (f"; look here: {flagged}" if flagged else ""))
    lines.append("QC trace: " + ", ".join(str(p) for p in report.trace_files))
    return "\n".join(lines)
