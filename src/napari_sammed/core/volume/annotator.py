"""An interactive 3D session: every box, click or painted slice updates the object's 3D mask.

The annotator remembers which slices the user *confirmed* (gave a box, clicks or a painted mask)
and which came from propagation. An interaction makes its slice confirmed, then re-propagates
outward from it through unconfirmed slices only. Each of the two fronts stops

- at a confirmed slice (the user's word is never overwritten),
- where its new mask agrees again with the old one (IoU >= ``agree_iou``): from there on the old
  masks would be re-predicted from nearly the same prompt, so a local fix stays local and cheap,
- after a click, where the old mask is already right at the clicked point (the error ends there),
- at the end of the object's z-range (a 3D box's first and last slice), or
- at the usual stop criteria (:func:`~.slice_step.judge`); then the object ends there and old
  propagated masks beyond it go, unless a confirmed slice further on still holds the object.

Inside a known z-range only a vanished mask stops a front: the user said the object is there.
A click whose mask would outgrow the object's largest slice ``MAX_GROWTH`` times is obeyed on its
slice alone (a small disc): the structure under it is another one. A negative click in the core
of a propagated slice's mask says "not on this slice", and a click that leaves its slice empty
ends the object there: what lies beyond it, away from the confirmed slices, is removed. A
negative click near the outline, or on a confirmed slice, edits that mask. Objects never share
a voxel: a mask loses what another object already holds. ``undo`` restores the exact 3D mask
before the last interaction.

Slice coordinates are (x, y) pixels; ``index`` runs along the embeddings' axis.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from ..engine.slice_engine import Prediction, Prompt
from ..settings import PropagationSettings
from . import interaction_checks as checks
from .annotator_state import Confirmed, ObjectState, UndoStep
from .click_geometry import deep_inside, holds, with_disc
from .propagation import Propagation
from .slice_step import judge, mask_iou, next_slice_prompt

#: A click whose mask outgrows the object's largest slice this many times has found another
#: (larger) structure under it: on the shared CT/MR such clicks ruined small objects
#: (docs/benchmarks.md).
MAX_GROWTH = 2.5


class VolumeAnnotator:
    """Boxes and clicks on any slice of ``embeddings``'s volume -> 3D masks, one per object id.

    ``embeddings`` is a :class:`~napari_sammed.core.volume.embeddings.VolumeEmbeddings` (slices
    are embedded when first needed). ``incremental=False`` re-propagates the whole object from
    its confirmed slices after every interaction instead (what other tools do; for comparison).
    """

    def __init__(self, embeddings, settings: PropagationSettings | None = None, agree_iou: float = 0.95,
                 trust_z_range: bool = True, incremental: bool = True) -> None:
        self.embeddings = embeddings
        self.engine = embeddings.engine
        self.n_slices = embeddings.n_slices
        self.slice_shape = tuple(embeddings.slice_shape)
        self.settings = (settings or PropagationSettings()).resolved(self.engine, self.slice_shape)
        self._in_range = replace(self.settings, min_iou=0.0, min_neighbour_iou=0.0)
        self.agree_iou, self.trust_z_range, self.incremental = agree_iou, trust_z_range, incremental
        self.objects: dict[int, ObjectState] = {}
        self.changed: list[int] = []  # slices the last interaction (or undo) changed
        self._history: list[UndoStep] = []
        self._step: UndoStep | None = None

    # ---- interactions --------------------------------------------------------------------
    def box(self, object_id: int, index: int, box, z_range: tuple[int, int] | None = None) -> np.ndarray:
        """A box (x0, y0, x1, y1) on slice ``index``; ``z_range`` (first, last slice) bounds the
        object, as a 3D box does. Clicks given earlier on that slice are dropped. -> 3D mask."""
        object_id, index = checks.object_id(object_id), self._check_index(index)
        z_range = checks.z_range(z_range, index, self.n_slices)
        box = checks.box(box, self.slice_shape)
        with self._interaction(object_id) as obj:
            if z_range is not None:
                obj.z_range = z_range
            confirmed = Confirmed(box=box)
            self._confirm(object_id, index, confirmed)
        return self.mask(object_id)

    def click(self, object_id: int, index: int, x: float, y: float, positive: bool = True) -> np.ndarray:
        """A positive (object here) or negative (not here) click at (x, y) on slice ``index``."""
        object_id, index = checks.object_id(object_id), self._check_index(index)
        x, y = checks.point(x, y, self.slice_shape)
        with self._interaction(object_id) as obj:
            if not positive and index not in obj.confirmed and deep_inside(obj.masks.get(index), x, y):
                # "not on this slice": the object ends here (a propagation that ran past it)
                empty = np.zeros(self.slice_shape, bool)
                self._confirm(object_id, index, Confirmed(points=[(float(x), float(y))], labels=[0]), empty)
                return self.mask(object_id)
            confirmed = copy.deepcopy(obj.confirmed.get(index)) or Confirmed()
            if confirmed.box is None and confirmed.base is None and index in obj.masks:
                confirmed.base = self._low(obj, index)
            confirmed.painted = False
            confirmed.points.append((float(x), float(y)))
            confirmed.labels.append(int(bool(positive)))
            prediction = self._decode_confirmed(confirmed, index)
            mask, low = prediction.mask, prediction.low_res_logits
            largest = max((int(m.sum()) for m in obj.masks.values()), default=0)
            if largest and mask.sum() > MAX_GROWTH * largest:
                # the click found another, larger structure: obey it on this slice only
                mask, low = with_disc(obj.masks.get(index), self.slice_shape, x, y, positive), None
            self._confirm(object_id, index, confirmed, mask, low, cue=(float(x), float(y), bool(positive)))
        return self.mask(object_id)

    def paint(self, object_id: int, index: int, mask: np.ndarray, z_range: tuple[int, int] | None = None,
              by_hand: bool = True) -> np.ndarray:
        """Slice ``index`` set to ``mask`` (H, W) as it is, and confirmed: drawn by hand, or
        (``by_hand=False``) a model's mask the user accepted. ``z_range`` as for :meth:`box`."""
        object_id, index = checks.object_id(object_id), self._check_index(index)
        mask = checks.mask(mask, self.slice_shape)
        z_range = checks.z_range(z_range, index, self.n_slices)
        with self._interaction(object_id) as obj:
            if z_range is not None:
                obj.z_range = z_range
            self._confirm(object_id, index, Confirmed(painted=by_hand), mask)
        return self.mask(object_id)

    def undo(self) -> int | None:
        """Take back the last interaction; returns its object id (None when nothing is left)."""
        if not self._history:
            return None
        step = self._history.pop()
        obj = self.objects[step.object_id]
        obj.confirmed, obj.z_range = step.confirmed, step.z_range
        for index, (mask, low) in step.slices.items():
            self._store(obj, index, mask, low)
        self.changed = sorted(step.slices)
        return step.object_id

    # ---- state ---------------------------------------------------------------------------
    def mask(self, object_id: int) -> np.ndarray:
        """The object's 3D mask, a new bool array in the volume's (Z, Y, X) order."""
        stack = np.zeros((self.n_slices, *self.slice_shape), bool)
        for index, mask in self.objects.get(object_id, ObjectState()).masks.items():
            stack[index] = mask
        return np.moveaxis(stack, 0, self.embeddings.axis)

    def confirmed(self, object_id: int) -> list[int]:
        """The slices the user confirmed for this object, in order."""
        return sorted(self.objects.get(object_id, ObjectState()).confirmed)

    def load(self, object_id: int, mask: np.ndarray, confirmed=()) -> None:
        """Start from an existing 3D mask (volume order), e.g. a labels layer; the ``confirmed``
        slices count as painted. Not an undoable interaction."""
        object_id = checks.object_id(object_id)
        shape = list(self.slice_shape)
        shape.insert(self.embeddings.axis, self.n_slices)
        stack = np.moveaxis(checks.mask(mask, tuple(shape), "a 3D mask"), self.embeddings.axis, 0)
        confirmed = {self._check_index(k) for k in confirmed}
        obj = self.objects[object_id] = ObjectState()
        for index in np.flatnonzero(stack.any(axis=(1, 2))):
            kept = stack[index] & ~self._others(object_id, int(index))  # objects never share a voxel
            if kept.any():
                obj.masks[int(index)] = kept
        obj.confirmed = {k: Confirmed(painted=True) for k in confirmed}
        self._history = [s for s in self._history if s.object_id != object_id]

    # ---- the update ----------------------------------------------------------------------
    def _confirm(self, object_id: int, index: int, confirmed: Confirmed, mask: np.ndarray | None = None,
                 low: np.ndarray | None = None, cue: tuple[float, float, bool] | None = None) -> None:
        """Set slice ``index`` from the user's input (``mask``, or decoded from ``confirmed``),
        then bring the rest of the object in line (``cue``: the click, see :meth:`_walk`)."""
        obj = self.objects[object_id]
        obj.confirmed[index] = confirmed
        if mask is None:
            prediction = self._decode_confirmed(confirmed, index)
            mask, low = prediction.mask, prediction.low_res_logits
        mask = mask & ~self._others(object_id, index)
        if obj.z_range is not None and mask.any():
            obj.z_range = (min(obj.z_range[0], index), max(obj.z_range[1], index))
        self._set(object_id, index, mask, low)
        if not self.incremental:
            self._rebuild(object_id)
        elif mask.any():
            for step in (1, -1):
                self._walk(object_id, index, step, cue)
        else:
            self._cut(object_id, index)

    def _decode_confirmed(self, confirmed: Confirmed, index: int) -> Prediction:
        points = labels = mask_input = None
        if confirmed.points:
            points, labels = np.array(confirmed.points, float), np.array(confirmed.labels, int)
        if confirmed.box is None and confirmed.base is not None:
            mask_input = self.engine.mask_prompt(confirmed.base)
        return self._predict(index, Prompt(points, labels, confirmed.box, mask_input))

    def _predict(self, index: int, prompt: Prompt) -> Prediction:
        return self.engine.predict_batch(self.embeddings.get(index), self.slice_shape, [prompt])[0]

    def _walk(self, object_id: int, start: int, step: int, cue: tuple[float, float, bool] | None = None) -> None:
        """Re-propagate from ``start`` in direction ``step`` through unconfirmed slices. After a
        click (``cue``: x, y, positive) the error it fixed ends where the old mask is already
        right at that point: the walk stops there (measured: lifts CT kidney L and small classes
        above their box step, where the walk used to trade good slices for new ones)."""
        obj = self.objects[object_id]
        mask, low = obj.masks[start], self._low(obj, start)
        reference = self._reference(obj, start)
        first, last = obj.z_range if obj.z_range is not None else (0, self.n_slices - 1)
        ahead = [k for k in obj.confirmed if (k - start) * step > 0]
        if ahead:  # the slices nearer the next confirmed slice stay its own
            nearest = min(ahead, key=lambda k: abs(k - start))
            reach = abs(nearest - start) // 2
            first, last = max(first, start - reach), min(last, start + reach)
        index = start + step
        while first <= index <= last and index not in obj.confirmed:
            if cue is not None and holds(obj.masks.get(index), cue[0], cue[1]) == cue[2]:
                return
            self._embed_ahead(index, step, first if step < 0 else last)
            prompt = next_slice_prompt(self.engine, self.settings, mask, low)
            prediction = self._predict(index, prompt)
            known = obj.z_range is not None and self.trust_z_range
            if judge(prediction, mask_iou(prediction.mask, reference), self._in_range if known else self.settings):
                self._cut(object_id, index - step, step)
                return
            old = obj.masks.get(index)
            new = prediction.mask & ~self._others(object_id, index)
            self._set(object_id, index, new, prediction.low_res_logits)
            if old is not None and mask_iou(old, new) >= self.agree_iou:
                return
            mask, low, reference = prediction.mask, prediction.low_res_logits, prediction.mask
            index += step

    def _cut(self, object_id: int, index: int, step: int | None = None) -> None:
        """The object ends at ``index``: clear the unconfirmed slices beyond it in direction
        ``step`` (default: away from the confirmed slices that hold the object), unless a
        confirmed slice further on still holds it (those masks came from there)."""
        obj = self.objects[object_id]
        holding = [k for k in obj.confirmed if k in obj.masks and k != index]
        if step is None:
            below, above = any(k < index for k in holding), any(k > index for k in holding)
            if below == above:
                if below or not obj.masks:
                    return
                centre = np.average(list(obj.masks), weights=[m.sum() for m in obj.masks.values()])
                above = centre > index
            step = -1 if above else 1
        if any((k - index) * step > 0 for k in holding):
            return
        k = index + step
        while 0 <= k < self.n_slices and k not in obj.confirmed:
            if k in obj.masks:
                self._set(object_id, k, None, None)
            k += step

    def _rebuild(self, object_id: int) -> None:
        """Propagate the object from scratch from its confirmed slices (``incremental=False``)."""
        obj = self.objects[object_id]
        seeds = {k: m for k, m in obj.masks.items() if k in obj.confirmed}
        for k in [k for k in obj.masks if k not in obj.confirmed]:
            self._set(object_id, k, None, None)
        if not seeds:
            return
        bounds = [k for k in obj.confirmed if k not in obj.masks]
        if obj.z_range is not None:
            bounds += [obj.z_range[0] - 1, obj.z_range[1] + 1]
        stops = {object_id: [(k, None, None) for k in bounds]}
        result = Propagation(self.embeddings, {object_id: seeds}, self.settings, stops).run()
        for k, mask in result.masks.get(object_id, {}).items():
            self._set(object_id, k, mask & ~self._others(object_id, k), None)

    # ---- helpers -------------------------------------------------------------------------
    def _interaction(self, object_id: int):
        return _Interaction(self, int(object_id))

    def _set(self, object_id: int, index: int, mask: np.ndarray | None, low: np.ndarray | None) -> None:
        """Store slice ``index`` of an object (None or empty clears it), remembering for undo."""
        obj = self.objects[object_id]
        if self._step is not None and index not in self._step.slices:
            self._step.slices[index] = (obj.masks.get(index), obj.lows.get(index))
        self._store(obj, index, mask, low)

    @staticmethod
    def _store(obj: ObjectState, index: int, mask: np.ndarray | None, low: np.ndarray | None) -> None:
        if mask is None or not mask.any():
            obj.masks.pop(index, None)
            obj.lows.pop(index, None)
            return
        obj.masks[index] = mask
        if low is None:
            obj.lows.pop(index, None)
        else:
            obj.lows[index] = low

    def _low(self, obj: ObjectState, index: int) -> np.ndarray:
        low = obj.lows.get(index)
        return low if low is not None else self.engine.mask_logits(obj.masks[index])

    def _reference(self, obj: ObjectState, index: int) -> np.ndarray:
        """What the first neighbour is compared with: a painted mask as the model would draw it
        (hand-drawn and model boundaries differ in style; see ``Propagation._calibrate``)."""
        mask = obj.masks[index]
        confirmed = obj.confirmed.get(index)
        if confirmed is None or not confirmed.painted:
            return mask
        prompt = next_slice_prompt(self.engine, self.settings, mask, self._low(obj, index), interior=False)
        rendered = self._predict(index, prompt).mask
        return rendered if rendered.any() else mask

    def _others(self, object_id: int, index: int) -> np.ndarray:
        taken = np.zeros(self.slice_shape, bool)
        for other_id, other in self.objects.items():
            if other_id != object_id and index in other.masks:
                taken |= other.masks[index]
        return taken

    def _embed_ahead(self, index: int, step: int, bound: int) -> None:
        """Embed the next few slices in one batch (the encoder is faster per slice in batches)."""
        if self.embeddings.is_embedded(index):
            return
        ahead = max(1, int(getattr(self.engine, "batch_size", 1)))
        wanted = list(range(index, bound + step, step))[:ahead]
        todo = self.embeddings.missing(wanted)
        if todo:
            self.embeddings.compute(todo)

    def _check_index(self, index) -> int:
        return checks.slice_index(index, self.n_slices)


class _Interaction:
    """``with``: one undoable step on one object (created on first use)."""

    def __init__(self, annotator: VolumeAnnotator, object_id: int) -> None:
        self.annotator, self.object_id = annotator, object_id

    def __enter__(self) -> ObjectState:
        ann = self.annotator
        obj = ann.objects.setdefault(self.object_id, ObjectState())
        ann._step = UndoStep(self.object_id, copy.deepcopy(obj.confirmed), obj.z_range)
        return obj

    def __exit__(self, kind, _value, _traceback) -> None:
        ann, step = self.annotator, self.annotator._step
        ann._step = None
        if kind is not None:  # a failed interaction leaves no trace
            obj = ann.objects[step.object_id]
            obj.confirmed, obj.z_range = step.confirmed, step.z_range
            for index, (mask, low) in step.slices.items():
                ann._store(obj, index, mask, low)
            return
        ann._history.append(step)
        ann.changed = sorted(step.slices)
