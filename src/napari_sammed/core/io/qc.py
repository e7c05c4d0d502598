"""Quality-control trace of a propagation: one row per object and slice, saved as CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..qc_vocabulary import FLAGS, STOP_REASONS
from .atomic import atomic_write
from .inputs import TraceCsvRow, read_csv_rows


@dataclass
class TraceRow:
    """One object on one slice, in the words of :mod:`napari_sammed.core.qc_vocabulary`:
    ``source`` one of ``SOURCES``, ``stop_reason`` a ``STOP_REASONS`` key or "". ``direction``:
    +1 / -1, 0 for seeds and for a slice reached from both sides at once. ``outside_seed_range``: the fraction of the mask
    whose intensity lies outside the seed's; ``flag``: a ``FLAGS`` key, "" when nothing to see."""

    object_id: int
    slice: int
    source: str
    predicted_iou: float | None
    neighbour_iou: float | None
    area: int
    direction: int = 0
    stop_reason: str = ""
    outside_seed_range: float | None = None
    flag: str = ""


@dataclass
class FrontEnd:
    """Where and why one front stopped: ``last`` is the last slice it stands on (written)."""

    object_id: int
    direction: int
    last: int
    reason: str


COLUMNS = [f.name for f in fields(TraceRow)]


def trace_to_csv(rows: Iterable[TraceRow]) -> str:
    """The QC trace as CSV text (one row per object and slice)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        values = asdict(row)
        for key in ("predicted_iou", "neighbour_iou", "outside_seed_range"):
            values[key] = "" if values[key] is None else f"{values[key]:.4f}"
        writer.writerow(values)
    return out.getvalue()


def read_trace_csv(path: str | Path, text: str | None = None) -> list[TraceRow]:
    """A QC trace CSV (as ``save_trace`` writes it; ``text``: its content, already read), every
    row validated, errors naming file and line. Traces written before the leak check (without
    its two columns) read back with no flags."""
    return [TraceRow(r.object_id, r.slice, r.source, r.predicted_iou, r.neighbour_iou, r.area, r.direction,
                     r.stop_reason or "", r.outside_seed_range, r.flag or "")
            for r in read_csv_rows(path, TraceCsvRow, text)]


def object_summary(rows: Iterable[TraceRow], ends: Iterable[FrontEnd] = ()) -> dict[int, dict]:
    """Per object: written slice range, slice counts, why each end stopped and the flagged slices.

    A front that stopped on a judged slice has a row saying why; one that stopped at the volume's
    end, another seed, the other front or ``max_steps`` only has its :class:`FrontEnd` (at its
    last written slice)."""
    rows = list(rows)
    summary: dict[int, dict] = {}
    for row in rows:
        entry = summary.setdefault(row.object_id, {"seeds": 0, "propagated": 0, "first": None,
                                                   "last": None, "stops": [], "look_here": []})
        if row.source in ("seed", "propagated"):
            entry["seeds" if row.source == "seed" else "propagated"] += 1
            entry["first"] = row.slice if entry["first"] is None else min(entry["first"], row.slice)
            entry["last"] = row.slice if entry["last"] is None else max(entry["last"], row.slice)
        if row.stop_reason:
            entry["stops"].append({"slice": row.slice, "reason": row.stop_reason})
        if row.flag:
            entry["look_here"].append({"slice": row.slice, "flag": row.flag})
    told = {(r.object_id, r.direction, r.stop_reason) for r in rows if r.stop_reason}
    for end in ends:
        if end.object_id in summary and (end.object_id, end.direction, end.reason) not in told:
            summary[end.object_id]["stops"].append({"slice": end.last, "reason": end.reason})
    return summary


def trace_to_json(rows: list[TraceRow], ends: Iterable[FrontEnd] = (), extra: dict | None = None) -> str:
    """The QC trace, per-object summary and front ends as JSON text."""
    ends = list(ends)
    payload = {"columns": COLUMNS, "rows": [asdict(r) for r in rows], "objects": object_summary(rows, ends),
               "front_ends": [asdict(e) for e in ends], "stop_reasons": STOP_REASONS, "flags": FLAGS,
               **(extra or {})}
    return json.dumps(payload, indent=2, default=float)


def save_trace(rows: list[TraceRow], path: str | Path, ends: Iterable[FrontEnd] = (),
               extra: dict | None = None) -> list[Path]:
    """Write ``<path>.csv`` and ``<path>.json`` (atomic); ``path`` is taken without its suffix."""
    base = Path(path)
    base = base.with_suffix("") if base.suffix.lower() in (".csv", ".json") else base
    written = []
    for suffix, text in ((".csv", trace_to_csv(rows)), (".json", trace_to_json(rows, list(ends), extra))):
        target = base.parent / (base.name + suffix)
        atomic_write(target, lambda tmp, text=text: Path(tmp).write_text(text))
        written.append(target)
    return written
