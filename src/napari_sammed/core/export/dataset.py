"""What the dataset formats (SAM-Med2D, nnU-Net) share: the guard before writing into a
folder, and the dataset's provenance record (one entry per case, plus its QC trace)."""

from __future__ import annotations

from pathlib import Path

from ..errors import NeedsOption
from ..io.inputs import Provenance
from ..io.qc import save_trace
from .case import ExportCase
from .staging import OURS, Staging, read_json

PROVENANCE_JSON = "napari_sammed_provenance.json"


def check_dataset_folder(folder: Path, index_files: tuple[str, ...], kind: str, case: str, append: bool,
                         overwrite: bool) -> None:
    """Refuse to write into a non-empty ``folder`` that is not a ``kind`` dataset (none of its
    ``index_files``), or into one that is, unless ``append`` or ``overwrite`` says so."""
    if not (folder.exists() and any(not p.name.startswith(OURS) for p in folder.iterdir())):
        return  # empty but for our lock (a new dataset)
    if not any((folder / name).exists() for name in index_files):
        raise FileExistsError(f"{folder} exists and is not a {kind} dataset (no {' or '.join(index_files)}); "
                              "choose a new folder, id or name")
    if not append and not overwrite:
        raise NeedsOption(f"{folder} exists; pass {{append}} to add case {case!r} (or {{overwrite}})")


def record_case(staging: Staging, folder: Path, case: ExportCase, details: dict, provenance: dict | None = None) -> None:
    """Stage the dataset's provenance (``provenance``, read from ``folder`` if not given) with
    ``case``'s entry (``details`` added) and its QC trace; a ``files`` list in ``details``
    gains the trace's files."""
    if provenance is None:
        provenance = read_json(folder / PROVENANCE_JSON, {"cases": {}}, Provenance)
    if case.trace:
        written = save_trace(case.trace, staging.path(f"qc/{case.name}_qc"))
        if "files" in details:
            details["files"] = sorted([*details["files"], *(f"qc/{p.name}" for p in written)])
    provenance["cases"][case.name] = case.provenance(details)
    staging.write_json(PROVENANCE_JSON, provenance)
