"""What a batch rerun trusts, checked before it is trusted.

A case is skipped when its ``done.json`` is a record of this plan, these inputs and this model
*and* the files it lists are still there at their recorded sizes; a case is not exported again
when ``exported.json`` records the same results and options and the dataset is still there. A
damaged record means "not done" (the work is redone), never a crash. Batch writes only into
OUTDIR's own folders: a symbolic link planted at a case's folder, the cache or the export is refused.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from ..errors import InputError, InputWarning
from ..io.atomic import atomic_write
from ..io.hashing import json_hash
from .plan import CaseSpec, Plan

DONE = "done.json"
EXPORT_RECORD = "exported.json"  # OUTDIR/exported.json: {case: what was exported}
CACHE = ".cache"  # OUTDIR/.cache/<case>: embeddings kept for reruns
EXPORT = "export"  # OUTDIR/export: the dataset


def _file_id(path: Path | None):
    if path is None:
        return None
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def case_key(case: CaseSpec, plan: Plan, model) -> str:
    """Fingerprint of everything a case's outputs depend on (the export block excluded)."""
    spec = {"case": case.name, "image": _file_id(case.image), "seeds": _file_id(case.seeds),
            "labels": _file_id(case.labels), "window": plan.window_of(case), "axis": plan.axis,
            "steps": [s for s in plan.steps if s != "export"],
            "propagation": plan.propagation.model_dump(), "samaug": plan.samaug.model_dump(),
            "model": model.identity()}
    return json_hash(spec)


def read_json_file(path: Path):
    """``path``'s JSON, or None if it is missing, unreadable, not JSON or absurdly nested."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None


def write_json(path: Path, payload) -> Path:
    """Write ``payload`` as JSON, atomically."""
    text = json.dumps(payload, indent=2, default=str) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def output_sizes(case_dir: Path, outputs: list[str]) -> dict[str, int]:
    """{output: size in bytes}, recorded in done.json so a rerun can tell a file was removed or cut."""
    return {name: (case_dir / name).stat().st_size for name in outputs}


def read_done(case_dir: Path) -> dict | None:
    """A case's ``done.json`` if it is a record whose outputs are all still there at their
    recorded sizes; None if it is missing, damaged, or an output is gone or changed."""
    done = read_json_file(case_dir / DONE)
    if not isinstance(done, dict) or not isinstance(done.get("key"), str):
        return None
    sizes = done.get("output_bytes")
    if not isinstance(sizes, dict):  # a record from before sizes were kept: the files must exist
        outputs = done.get("outputs")
        sizes = {name: None for name in outputs} if isinstance(outputs, list) else None
    if sizes is None or not all(isinstance(name, str) for name in sizes):
        return None
    for name, size in sizes.items():
        path = case_dir / name
        if not path.is_file() or (size is not None and path.stat().st_size != size):
            return None
    return done


def is_done(case: CaseSpec, plan: Plan, model, outdir: Path) -> dict | None:
    """The case's trusted ``done.json`` when it matches this plan, inputs and model, else None."""
    done = read_done(outdir / case.name)
    return done if done is not None and done.get("key") == case_key(case, plan, model) else None


def read_export_record(outdir: Path, dataset: Path) -> dict:
    """``exported.json`` as {case: record}; empty (every case exported again, with a warning
    when the file was there) if it is damaged or the dataset it describes is gone."""
    path = outdir / EXPORT_RECORD
    if not path.exists():
        return {}
    record = read_json_file(path)
    if not isinstance(record, dict) or not all(isinstance(v, dict) for v in record.values()):
        warnings.warn(InputWarning(path, "damaged (not a record of exported cases); exporting every case "
                                         "again"), stacklevel=2)
        return {}
    return record if dataset.exists() else {}


def check_outdir(plan: Plan, outdir: Path, dataset: Path) -> None:
    """Refuse a symbolic link where batch writes (a case's folder, its SAMAug maps, the cache, the
    export dataset): it would make the run overwrite another folder or dataset."""
    places = [EXPORT, str(dataset.relative_to(outdir)), CACHE]
    for case in plan.cases:
        places += [case.name, f"{case.name}/samaug", f"{CACHE}/{case.name}"]
    for place in places:
        path = outdir
        for part in Path(place).parts:
            path = path / part
            if path.is_symlink():
                raise InputError(path, "is a symbolic link; batch writes only into OUTDIR's own folders "
                                       "(remove the link or choose another OUTDIR)")
