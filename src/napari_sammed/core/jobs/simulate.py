"""A simulated annotator (``napari-sammed simulate``): the CVPR 2025 interactive 3D protocol.

Per class of the reference labels: step 0 is a box - the reference's 2D box on its middle
labelled slice, with the class's z-range (first and last labelled slice), no jitter - then
``clicks`` clicks, each at the deepest point of the largest 26-connected error component
(:func:`~napari_sammed.core.volume.metrics.next_click`), positive where the reference is, on
that point's slice. Every interaction goes through :class:`VolumeAnnotator`, as a user's would.
After every step: Dice and NSD (2 mm surface tolerance, voxel spacing respected; NSD counts 0 when
Dice <= 0.2). DSC_AUC and NSD_AUC are the trapezoid over the click steps (at most clicks - 1).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.frame import mask_box
from ..engine.slice_engine import SliceEngine
from ..errors import InputError
from ..io.read import read_volume
from ..io.tables import markdown_table
from ..io.windowing import Window, describe_window, resolve_window
from ..settings import SimulateSettings
from ..volume.annotator import VolumeAnnotator
from ..volume.embeddings import VolumeEmbeddings
from ..volume.metrics import Click, auc, dice, next_click, protocol_nsd

NSD_TOLERANCE_MM = 2.0
log = logging.getLogger(__name__)


@dataclass
class ClassRun:
    """One class through the protocol: metrics after the box (index 0) and after each click."""

    class_id: int
    dice: list[float] = field(default_factory=list)
    nsd: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # each interaction, embedding included
    clicks: list[Click] = field(default_factory=list)

    @property
    def dsc_auc(self) -> float:
        return auc(self.dice[1:])

    @property
    def nsd_auc(self) -> float:
        return auc(self.nsd[1:])


@dataclass(frozen=True)
class SimulationReport:
    """One protocol run over a volume: a :class:`ClassRun` per class, the window, the spacing."""

    runs: list[ClassRun]
    window: Window | None
    spacing: tuple[float, ...]
    settings: SimulateSettings


def reference_box(reference: np.ndarray) -> tuple[int, np.ndarray, tuple[int, int]]:
    """(Z, Y, X) reference -> (middle labelled slice, its XYXY box in pixel edges, z-range)."""
    slices = np.flatnonzero(reference.any(axis=(1, 2)))
    if slices.size == 0:
        raise ValueError("the reference is empty")
    middle = int(slices[len(slices) // 2])
    return middle, mask_box(reference[middle]), (int(slices[0]), int(slices[-1]))


def simulate_class(annotator: VolumeAnnotator, class_id: int, reference: np.ndarray, spacing,
                   clicks: int = 5) -> ClassRun:
    """Run the protocol for one class (object ``class_id`` of ``annotator``, along z)."""
    reference = np.asarray(reference, bool)
    run = ClassRun(class_id)

    def record(interaction: Callable[[], np.ndarray]) -> np.ndarray:
        started = time.perf_counter()
        prediction = interaction()
        run.seconds.append(time.perf_counter() - started)
        run.dice.append(dice(prediction, reference))
        run.nsd.append(protocol_nsd(prediction, reference, spacing, NSD_TOLERANCE_MM))
        return prediction

    index, box, z_range = reference_box(reference)
    prediction = record(lambda: annotator.box(class_id, index, box, z_range=z_range))
    for _ in range(clicks):
        click = next_click(prediction, reference)
        if click is None:  # perfect: nothing left to click
            run.seconds.append(0.0)
            run.dice.append(run.dice[-1])
            run.nsd.append(run.nsd[-1])
            continue
        run.clicks.append(click)
        prediction = record(lambda c=click: annotator.click(class_id, c.z, c.x + 0.5, c.y + 0.5, c.positive))
    return run


def simulate(embeddings: VolumeEmbeddings, labels: np.ndarray, spacing, classes: list[int] | None = None,
             settings: SimulateSettings = SimulateSettings(),
             progress: Callable[[int, int], None] | None = None) -> list[ClassRun]:
    """The protocol for every class of ``labels`` (or ``classes``), each in a fresh annotator
    (classes are scored independently, as in the challenge); embeddings are shared."""
    if embeddings.axis != 0:
        raise InputError(None, "the protocol runs along z (axis 0)")
    present = [int(v) for v in np.unique(labels) if v != 0]
    if not present:
        raise InputError(None, "the labels hold no class (every voxel is 0)")
    wanted = present if classes is None else list(dict.fromkeys(classes))
    missing = sorted(set(wanted) - set(present))
    if missing:
        raise InputError(None, f"class(es) {', '.join(map(str, missing))} not in the labels (present: "
                         f"{', '.join(map(str, present)) or 'none'})")
    runs = []
    for done, class_id in enumerate(wanted, 1):
        annotator = VolumeAnnotator(embeddings, incremental=not settings.from_scratch)
        runs.append(simulate_class(annotator, class_id, labels == class_id, spacing, settings.clicks))
        if progress is not None:
            progress(done, len(wanted))
    return runs


def simulate_files(image: str | Path, labels: str | Path, engine: SliceEngine, window=None,
                   classes: list[int] | None = None, settings: SimulateSettings = SimulateSettings(),
                   cache_dir: str | Path | None = None,
                   progress: Callable[[int, int], None] | None = None) -> SimulationReport:
    """Read IMAGE and LABELS and run :func:`simulate` on them."""
    log.info(f"reading {image} and {labels}")
    volume, reference = read_volume(image), read_volume(labels)
    if volume.data.ndim != 3:
        raise InputError(image, f"the protocol needs a 3D image, got shape {volume.data.shape}")
    if reference.data.shape != volume.data.shape:
        raise InputError(labels, f"labels have shape {reference.data.shape}, the image {volume.data.shape}")
    values = np.unique(reference.data)
    if not np.all(np.mod(values, 1) == 0) or values.min() < 0:
        raise InputError(labels, f"labels must be whole numbers, 0 for background and class ids from 1 "
                         f"(found {values[:5].tolist()}{' ...' if len(values) > 5 else ''})")
    resolved = resolve_window(volume.data, window)
    log.info(describe_window(resolved))
    embeddings = VolumeEmbeddings(engine, volume.data, resolved, "z", cache_dir)
    runs = simulate(embeddings, reference.data, volume.spacing, classes, settings, progress)
    return SimulationReport(runs, resolved, volume.spacing, settings)


def summary(runs: list[ClassRun]) -> dict[str, float]:
    """Means over classes: Dice after the box and final, DSC_AUC, NSD_AUC, seconds per interaction."""
    return {
        "dice_box": float(np.mean([r.dice[0] for r in runs])),
        "dice_final": float(np.mean([r.dice[-1] for r in runs])),
        "dsc_auc": float(np.mean([r.dsc_auc for r in runs])),
        "nsd_final": float(np.mean([r.nsd[-1] for r in runs])),
        "nsd_auc": float(np.mean([r.nsd_auc for r in runs])),
        "seconds": float(np.mean([s for r in runs for s in r.seconds])),
    }


def format_table(runs: list[ClassRun]) -> str:
    """A Markdown table: Dice after each step, DSC_AUC, NSD final/AUC, seconds per interaction."""
    steps = len(runs[0].dice) if runs else 0
    head = ["class", "box", *(f"click {i}" for i in range(1, steps)), "DSC_AUC", "NSD", "NSD_AUC", "s/interaction"]
    rows = [[r.class_id, *(f"{d:.3f}" for d in r.dice), f"{r.dsc_auc:.2f}", f"{r.nsd[-1]:.3f}", f"{r.nsd_auc:.2f}",
             f"{np.mean(r.seconds):.2f}"] for r in runs]
    if runs:
        s = summary(runs)
        rows.append(["**mean**", *(f"{np.mean([r.dice[i] for r in runs]):.3f}" for i in range(steps)),
                     f"{s['dsc_auc']:.2f}", f"{s['nsd_final']:.3f}", f"{s['nsd_auc']:.2f}", f"{s['seconds']:.2f}"])
    return markdown_table(head, rows, left=0)


def to_csv(runs: list[ClassRun]) -> str:
    """One row per class and step: Dice, NSD, seconds, the click (z, y, x, positive)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["class", "step", "interaction", "z", "y", "x", "positive", "dice", "nsd", "seconds",
                     "dsc_auc", "nsd_auc"])
    for r in runs:
        for step, (d, n, s) in enumerate(zip(r.dice, r.nsd, r.seconds, strict=True)):
            click = r.clicks[step - 1] if 0 < step <= len(r.clicks) else None
            where = ["", "", "", ""] if click is None else [click.z, click.y, click.x, int(click.positive)]
            kind = "box" if step == 0 else ("click" if click is not None else "none")
            writer.writerow([r.class_id, step, kind, *where, f"{d:.6f}", f"{n:.6f}", f"{s:.4f}",
                             f"{r.dsc_auc:.4f}", f"{r.nsd_auc:.4f}"])
    return out.getvalue()


def format_report(report: SimulationReport, label: str) -> str:
    """What ``simulate`` prints: the protocol line, the per-class table and the means."""
    runs, window, clicks = report.runs, report.window, report.settings.clicks
    mode = "re-propagated from scratch" if report.settings.from_scratch else "incremental 3D update"
    s = summary(runs)
    return "\n".join([
        f"CVPR 2025 interactive protocol: box + {clicks} clicks, {len(runs)} classes, {label}, "
        f"window {'none' if window is None else f'{window.low:g}..{window.high:g}'}, {mode}",
        format_table(runs),
        f"mean Dice after the box {s['dice_box']:.3f}, final {s['dice_final']:.3f}; DSC_AUC {s['dsc_auc']:.2f}; "
        f"final NSD {s['nsd_final']:.3f}; {s['seconds']:.2f} s per interaction"])
