"""What the dataset formats (SAM-Med2D, nnU-Net) share: the guard before writing into a
folder, and the dataset's provenance record (one entry per case, plus its QC trace)."""

from __future__ import annotations

from pathlib import Path

from ..io.inputs import NeedsOption, Provenance
from ..io.qc import save_trace
from .case import ExportCase
from .staging import Staging, read_json

PROVENANCE_JSON = "napari_sammed_provenance.json"


def check_dataset_folder(folder: Path, index_files: tuple[str, ...], kind: str, case: str, append: bool,
                         overwrite: bool) -> None:
    """Refuse to write into a non-empty ``folder`` that is not a ``kind`` dataset (none of its
    ``index_files``), or into one that is, unless ``append`` or ``overwrite`` says so."""
    if not (folder.exists() and any(folder.iterdir())):
        return
    if not any((folder / name).exists() for name in index_files):
        raise FileExistsError(f"{folder} exists and is not a {kind} dataset (no {' or '.join(index_files)}); "
                              "choose a new folder, id or name")
    if not append and not overwrite:
        raise NeedsOption(f"{folder} exists; pass {{append}} to add case {case!r} (or {{overwrite}})")


def record_case(staging: Staging, folder: Path, case: ExportCase, details: dict) -> None:
    """Stage the dataset's provenance with ``case``'s entry (``details`` added) and its QC trace."""
    provenance = read_json(folder / PROVENANCE_JSON, {"cases": {}}, Provenance)
    provenance["cases"][case.name] = case.provenance(details)
    staging.write_json(PROVENANCE_JSON, provenance)
    if case.trace:
        save_trace(case.trace, staging.path(f"qc/{case.name}_qc"))
