"""Propagate masks slice by slice through a volume, from seed slices, for several objects at once.

Every seed slice of an object starts two *fronts* (one per direction). A front prompts slice
k + step with the previous result: its box enlarged by a margin, its low-res logits as the mask
prompt and, optionally, positive points deep inside it. Fronts advance in rounds, one slice per
round, so the fronts of all objects that stand on the same slice share one batched decoder call,
and two fronts filling the gap between two seeds meet in the middle: a front never enters a
slice the other already filled, and a slice both reach in the same round gets the average of
their logits. A front stops when its mask vanishes, the predicted IoU or the IoU with the
previous slice falls below a threshold, it reaches a seed, a stop marker or the volume's end.
Every written slice is also checked for a leak (``leak_check``): flagged in the trace, kept as is.
The prompt recipe and the stop rule live in :mod:`.slice_step`, the settings in
:mod:`napari_sammed.core.settings`.

Everything works in slice pixel coordinates (x, y), so voxel spacing never distorts a prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass

import numpy as np

from ..engine.slice_engine import Prediction, Prompt
from ..errors import InputError
from ..io.qc import FrontEnd, TraceRow
from ..settings import DIRECTIONS, PropagationSettings
from .embeddings import get_slice
from .leak_check import IntensityRange, check_slice, intensity_range
from .slice_step import enlarged_box, judge, mask_iou, next_slice_prompt

Seeds = Mapping[int, Mapping[int, np.ndarray]]  # object id -> {slice index: (H, W) bool mask}
StopMarkers = Mapping[int, list[tuple[int, float | None, float | None]]]  # object id (0 = all) -> (slice, x, y)


@dataclass
class PropagationStep:
    """What one slice of one round produced (sent to the UI as it happens)."""

    index: int
    masks: dict[int, np.ndarray]  # object id -> accepted mask on this slice
    done: int
    total: int


@dataclass
class _Gap:
    """The unseeded slices between two seeds (or a seed and the volume's end) of one object."""

    size: int
    filled: int = 0
    open_fronts: int = 0


@dataclass
class _Front:
    object_id: int
    step: int
    last: int  # last slice this front stands on
    end: int  # the first slice it may not enter: the next seed, or -1 / n
    mask: np.ndarray  # prompts come from this mask ...
    low_res: np.ndarray
    reference: np.ndarray  # ... and the next mask is compared with this one (see _calibrate)
    gap: _Gap
    steps: int = 0
    active: bool = True
    intensity: IntensityRange | None = None  # the seed's, for the leak check


def paint_masks(labels: np.ndarray, axis: int, masks: Mapping[int, Mapping[int, np.ndarray]],
                overwrite: bool = False) -> int:
    """Paint ``masks`` (object id -> {slice: mask}) into a label volume in place; labelled voxels
    are kept unless ``overwrite``. Objects are written in id order, so where two claim the same
    voxel the lower id keeps it. Returns the number of voxels written."""
    written = 0
    stack = np.moveaxis(labels, axis, 0)  # a view: writing a plane writes ``labels``
    for object_id in sorted(masks):
        for index, mask in masks[object_id].items():
            plane = stack[index]
            target = mask & (plane != object_id) & ((plane == 0) | overwrite)
            plane[target] = object_id
            written += int(target.sum())
    return written


def seeds_from_labels(labels: np.ndarray, axis: int, object_ids: list[int] | None = None) -> dict[int, dict[int, np.ndarray]]:
    """Every slice along ``axis`` where an object has voxels becomes one of its seeds."""
    moved = np.moveaxis(np.asarray(labels), axis, 0)
    ids = object_ids if object_ids is not None else [int(v) for v in np.unique(moved) if v != 0]
    seeds: dict[int, dict[int, np.ndarray]] = {}
    for object_id in ids:
        present = np.flatnonzero((moved == object_id).any(axis=(1, 2)))
        if present.size:
            seeds[object_id] = {int(k): moved[k] == object_id for k in present}
    return seeds


class Propagation:
    """One propagation of ``seeds`` through the volume of ``embeddings`` (a
    :class:`~napari_sammed.core.volume.embeddings.VolumeEmbeddings`), along its axis.

    Built ready to run (seeds checked, fronts placed, settings resolved for the engine); then
    :meth:`steps` yields one :class:`PropagationStep` per decoded slice (for a UI), or
    :meth:`run` goes to the end. Meanwhile and afterwards it holds the result: ``masks``
    (object id -> {slice: mask}, seeds excluded), the QC ``trace`` and where each front ``ends``.
    """

    def __init__(self, embeddings, seeds: Seeds, settings: PropagationSettings | None = None,
                 stops: StopMarkers | None = None) -> None:
        self.embeddings = embeddings
        self.engine = embeddings.engine
        self.n_slices = embeddings.n_slices
        self.slice_shape = tuple(embeddings.slice_shape)
        self.settings = (settings or PropagationSettings()).resolved(self.engine, self.slice_shape)
        self.masks: dict[int, dict[int, np.ndarray]] = {}
        self.ends: list[FrontEnd] = []
        self._rows: list[TraceRow] = []
        self._markers = stops or {}
        self._filled: dict[int, dict[int, np.ndarray]] = {}
        self._fronts = self._start(seeds)
        self.total = sum({id(f.gap): f.gap.size for f in self._fronts}.values())  # slices to fill at most
        self.done = 0

    @property
    def trace(self) -> list[TraceRow]:
        """The QC trace so far, one row per object and slice, in (object, slice) order."""
        return sorted(self._rows, key=lambda row: (row.object_id, row.slice))

    def steps(self) -> Generator[PropagationStep, None, None]:
        """Yield one :class:`PropagationStep` per decoded slice until every front has stopped."""
        self._calibrate(self._fronts)
        fronts = self._fronts
        while fronts:
            targets: dict[int, list[tuple[_Front, Prompt]]] = {}
            for front in fronts:
                prompt = self._next_prompt(front)
                if prompt is not None:
                    targets.setdefault(front.last + front.step, []).append((front, prompt))
            self._embed_ahead(targets, fronts)
            for index in sorted(targets):
                accepted = self._advance(index, targets[index])
                for object_id, mask in accepted.items():
                    self.masks.setdefault(object_id, {})[index] = mask
                yield PropagationStep(index, accepted, self.done, self.total)
            fronts = [f for f in fronts if f.active]

    def run(self, progress: Callable[[int, int], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> Propagation:
        """Propagate to the end, or until ``should_stop()`` says so; returns ``self``."""
        for step in self.steps():
            if progress is not None:
                progress(step.done, step.total)
            if should_stop is not None and should_stop():
                break
        return self

    def write_into(self, labels: np.ndarray, axis: int, overwrite: bool = False) -> int:
        """Paint the propagated masks into ``labels`` (see :func:`paint_masks`)."""
        return paint_masks(labels, axis, self.masks, overwrite)

    def _embed_ahead(self, targets: dict, fronts: list[_Front]) -> None:
        """Embed the slices this round needs, plus the next few along each front, in one batch.

        The encoder is much faster per slice in batches; a front that stops early wastes at
        most ``batch_size - 1`` slices.
        """
        if all(self.embeddings.is_embedded(k) for k in targets):
            return
        wanted = set(targets)
        ahead = max(1, getattr(self.engine, "batch_size", 1))
        for front in fronts:
            if front.active and front.last + front.step in targets:
                for j in range(1, ahead + 1):
                    k = front.last + j * front.step
                    if k == front.end or not 0 <= k < self.n_slices:
                        break
                    wanted.add(k)
        self._embed(wanted)

    def _embed(self, indices) -> None:
        """Embed those of ``indices`` not embedded yet, in one call (batched by the engine)."""
        todo = self.embeddings.missing(sorted(set(indices)))
        if todo:
            self.embeddings.compute(todo)

    # ---- fronts --------------------------------------------------------------------------
    def _start(self, seeds: Seeds) -> list[_Front]:
        fronts = []
        for object_id, by_slice in seeds.items():
            indices = sorted(int(k) for k, m in by_slice.items() if np.any(m))
            if not indices:
                continue
            for k in indices:
                mask = np.asarray(by_slice[k], bool)
                if mask.shape != self.slice_shape:
                    raise InputError(None, f"seed of object {object_id} on slice {k} has shape {mask.shape}, "
                                     f"slices are {self.slice_shape}")
                self._filled.setdefault(object_id, {})[k] = mask
                self._rows.append(TraceRow(object_id, k, "seed", None, None, int(mask.sum())))
            bounds = [-1, *indices, self.n_slices]
            gaps = {}
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
                if hi - lo > 1:
                    gaps[(lo, hi)] = _Gap(hi - lo - 1)
            lows: dict[int, np.ndarray] = {}  # one seed may start two fronts
            for step in DIRECTIONS[self.settings.direction]:
                for k in indices:
                    neighbour = bounds[bounds.index(k) + step]
                    gap = gaps.get((min(k, neighbour), max(k, neighbour)))
                    if gap is None:
                        continue
                    mask = self._filled[object_id][k]
                    if k not in lows:
                        lows[k] = self.engine.mask_logits(mask)
                    gap.open_fronts += 1
                    fronts.append(_Front(object_id, step, k, neighbour, mask, lows[k], mask, gap))
        return fronts

    def _calibrate(self, fronts: list[_Front]) -> None:
        """Compare a seed's first neighbour with the engine's own rendering of the seed.

        A hand-drawn seed and a model's mask differ in style (how tight the boundary is), and
        on small objects that alone can push the IoU of the first step under the threshold.
        Re-segmenting the seed slice with the seed as prompt gives a like-for-like reference.
        """
        starts: dict[int, dict[int, _Front]] = {}
        for front in fronts:
            starts.setdefault(front.last, {})[front.object_id] = front
        self._embed(starts)
        rendered: dict[tuple[int, int], np.ndarray] = {}
        for k, by_object in starts.items():
            prompts = [self._prompt(f.mask, f.low_res, interior=False) for f in by_object.values()]
            predictions = self.engine.predict_batch(self.embeddings.get(k), self.slice_shape, prompts)
            for object_id, prediction in zip(by_object, predictions, strict=True):
                if prediction.mask.any():
                    rendered[(k, object_id)] = prediction.mask
        for front in fronts:
            front.reference = rendered.get((front.last, front.object_id), front.mask)
            front.intensity = intensity_range(self._image(front.last), front.reference)

    def _image(self, index: int) -> np.ndarray | None:  # the raw (unwindowed) slice, for the leak check
        volume = getattr(self.embeddings, "volume", None)  # None: no image to check against
        return None if volume is None else get_slice(volume, self.embeddings.axis, index)

    def _stop(self, front: _Front, reason: str) -> None:
        self.ends.append(FrontEnd(front.object_id, front.step, front.last, reason))
        front.active = False
        front.gap.open_fronts -= 1
        if front.gap.open_fronts == 0:
            self.done += front.gap.size - front.gap.filled

    def _next_prompt(self, front: _Front) -> Prompt | None:
        s = self.settings
        target = front.last + front.step
        reason = ""
        if target == front.end:
            reason = "volume_end" if target in (-1, self.n_slices) else "reached_seed"
        elif target in self._filled.get(front.object_id, {}):
            reason = "met"
        elif s.max_steps is not None and front.steps >= s.max_steps:
            reason = "max_steps"
        box = None if reason else enlarged_box(front.mask, s.box_margin, s.min_margin)
        if not reason and self._marked(front.object_id, target, box):
            reason = "stop_marker"
            self._rows.append(TraceRow(front.object_id, target, "stopped", None, None, 0, front.step, reason))
        if reason:
            self._stop(front, reason)
            return None
        return self._prompt(front.mask, front.low_res, box=box)

    def _prompt(self, mask: np.ndarray, low_res: np.ndarray, box: np.ndarray | None = None,
                interior: bool = True) -> Prompt:
        return next_slice_prompt(self.engine, self.settings, mask, low_res, box, interior)

    def _marked(self, object_id: int, index: int, box: np.ndarray) -> bool:
        for key in (object_id, 0):
            for k, x, y in self._markers.get(key, []):
                if k != index:
                    continue
                if x is None or (box[0] <= x <= box[2] and box[1] <= y <= box[3]):
                    return True
        return False

    def _advance(self, index: int, entries: list[tuple[_Front, Prompt]]) -> dict[int, np.ndarray]:
        """Decode every front entering slice ``index`` in one batch; judge and record each."""
        predictions = self.engine.predict_batch(self.embeddings.get(index), self.slice_shape,
                                                [prompt for _, prompt in entries])
        by_object: dict[int, list[tuple[_Front, Prediction]]] = {}
        for (front, _), prediction in zip(entries, predictions, strict=True):
            by_object.setdefault(front.object_id, []).append((front, prediction))
        accepted = {}
        for object_id, pairs in by_object.items():
            prediction = pairs[0][1] if len(pairs) == 1 else _reconcile([p for _, p in pairs])
            neighbour = min(mask_iou(prediction.mask, f.reference) for f, _ in pairs)
            reason = judge(prediction, neighbour, self.settings)
            area = int(prediction.mask.sum())
            direction = pairs[0][0].step if len(pairs) == 1 else 0
            source = "rejected" if reason else "propagated"
            outside, flag = check_slice(self._image(index), prediction.mask, [f.intensity for f, _ in pairs])
            self._rows.append(TraceRow(object_id, index, source, prediction.iou, neighbour, area, direction, reason,
                                       outside, "" if reason else flag))
            for front, _ in pairs:
                if reason:
                    self._stop(front, reason)
                    continue
                front.last, front.mask, front.low_res = index, prediction.mask, prediction.low_res_logits
                front.reference = prediction.mask
                front.steps += 1
            if not reason:
                self._filled[object_id][index] = prediction.mask
                pairs[0][0].gap.filled += 1
                self.done += 1
                accepted[object_id] = prediction.mask
        return accepted


def _reconcile(predictions: list[Prediction]) -> Prediction:
    """Where two fronts reach the same slice together: average their logits."""
    logits = np.mean([p.logits for p in predictions], axis=0)
    low = np.mean([p.low_res_logits for p in predictions], axis=0)
    return Prediction(logits > 0, logits.astype(np.float32), float(np.mean([p.iou for p in predictions])), low)


def propagate(
    embeddings,
    seeds: Seeds,
    settings: PropagationSettings | None = None,
    stops: StopMarkers | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Propagation:
    """Propagate ``seeds`` through ``embeddings``'s volume along its axis; see module docstring."""
    return Propagation(embeddings, seeds, settings, stops).run(progress, should_stop)
