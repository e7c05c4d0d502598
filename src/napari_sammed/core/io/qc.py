"""Quality-control trace of a propagation: one row per object and slice, saved as CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .atomic import atomic_write

STOP_REASONS = {
    "empty": "the mask vanished",
    "low_iou": "predicted IoU under the threshold",
    "low_neighbour_iou": "IoU with the previous slice under the threshold",
    "stop_marker": "a stop marker on this slice",
    "reached_seed": "reached another seed slice",
    "met": "met the front coming from the other side",
    "volume_end": "reached the end of the volume",
    "max_steps": "walked the maximum number of slices",
}

#: Advisory flags: "look here", the mask was kept as it is (see ``volume/leak_check.py``).
FLAGS = {
    "leak": "much of the mask lies outside the seed's intensity range: it may have leaked into a neighbour",
}


@dataclass
class TraceRow:
    """One object on one slice. ``source``: seed, propagated, rejected (judged and not written)
    or stopped (a stop marker kept the front out). ``direction``: +1 / -1, 0 for seeds and for
    a slice reached from both sides at once. ``outside_seed_range``: the fraction of the mask
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


def trace_from_csv(text: str) -> list[TraceRow]:
    """QC trace rows back from CSV text (validated); traces written before the leak check
    (without its two columns) read back with no flags."""
    rows = []
    for values in csv.DictReader(io.StringIO(text)):
        outside = values.get("outside_seed_range") or ""
        rows.append(TraceRow(
            int(values["object_id"]), int(values["slice"]), values["source"],
            float(values["predicted_iou"]) if values["predicted_iou"] else None,
            float(values["neighbour_iou"]) if values["neighbour_iou"] else None,
            int(values["area"]), int(values["direction"]), values["stop_reason"],
            float(outside) if outside else None, values.get("flag") or "",
        ))
    return rows


def read_trace_csv(path: str | Path) -> list[TraceRow]:
    """A QC trace CSV (as ``save_trace`` writes it), every row validated; errors name file and line."""
    from .inputs import TraceCsvRow, read_csv_rows

    return [TraceRow(r.object_id, r.slice, r.source, r.predicted_iou, r.neighbour_iou, r.area, r.direction,
                     r.stop_reason or "", r.outside_seed_range, r.flag or "") for r in read_csv_rows(path, TraceCsvRow)]


def object_summary(rows: Iterable[TraceRow]) -> dict[int, dict]:
    """Per object: written slice range, slice counts, why each end stopped and the flagged slices."""
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
    return summary


def trace_to_json(rows: list[TraceRow], ends: Iterable[FrontEnd] = (), extra: dict | None = None) -> str:
    """The QC trace, per-object summary and front ends as JSON text."""
    payload = {"columns": COLUMNS, "rows": [asdict(r) for r in rows], "objects": object_summary(rows),
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
