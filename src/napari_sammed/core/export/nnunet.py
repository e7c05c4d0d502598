"""nnU-Net v2 raw dataset: ``DatasetNNN_Name/{imagesTr,labelsTr}`` + ``dataset.json``.

Images keep the source geometry (NIfTI header or DICOM affine, converted to RAS) and dtype;
labels are remapped to the consecutive values nnU-Net requires, by class name, so that every
case of a dataset agrees (``labels`` in dataset.json is that table; the per-case mapping from
the layer's ids is written to ``napari_sammed_provenance.json``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import InputError, NeedsOption
from ..io.inputs import NnunetDatasetJson
from ..io.write import label_dtype, to_nifti
from .case import ExportCase
from .dataset import PROVENANCE_JSON, check_dataset_folder, record_case
from .staging import Staging, read_json, writing

FILE_ENDING = ".nii.gz"  # of new datasets; an existing one keeps its own
NIFTI_ENDINGS = (".nii.gz", ".nii")
RGB_CHANNELS = {"0": "R", "1": "G", "2": "B"}
#: SAMAug's priors as channels 1 and 2. nnU-Net normalises a channel by its name: "CT" gets the
#: dataset-wide CT scheme (absolute HU), unknown names per-image z-scoring, which suits the priors
#: (their scale is relative: the seg prior sums the stability scores of overlapping masks).
PRIOR_CHANNELS = {"1": "samaug_seg_prior", "2": "samaug_boundary_prior"}


def dataset_folder(root: str | Path, dataset_id: int, name: str) -> Path:
    """``root/DatasetNNN_Name``, with the id and name checked against nnU-Net's rules."""
    if not 1 <= int(dataset_id) <= 999:
        raise InputError(None, f"nnU-Net dataset ids have 3 digits (1-999); got {dataset_id}")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name or ""):
        raise InputError(None, f"dataset name {name!r}: use letters, digits, '_' or '-'")
    return Path(root) / f"Dataset{int(dataset_id):03d}_{name}"


def label_table(existing: dict, names: list[str]) -> dict[str, int]:
    """Extend nnU-Net's {name: value} table with new class names, keeping values consecutive."""
    table = {"background": 0, **{k: int(v) for k, v in existing.items() if k != "background"}}
    values = sorted(table.values())
    if values != list(range(len(values))):
        raise InputError(None, f"existing dataset.json labels are not consecutive: {table}")
    for name in names:
        if name not in table:
            table[name] = len(table)
    return table


def export_nnunet(
    case: ExportCase,
    root: str | Path,
    dataset_id: int,
    dataset_name: str,
    channel_name: str = "CT",
    append: bool = False,
    overwrite: bool = False,
    samaug_channels: bool = False,
) -> dict:
    """Write (or add) ``case`` to ``root/DatasetNNN_Name``; returns a summary with the mapping.

    ``samaug_channels``: ``case.priors`` become channels ``_0001`` (segmentation prior) and
    ``_0002`` (boundary prior) beside the image, with its exact geometry. An existing
    ``dataset.json`` keeps every key it has (``labels`` grows, ``numTraining`` is recounted), and
    the case's files take its ``file_ending``; the dataset is locked from reading it to the end.
    """
    case.validate()
    folder = dataset_folder(root, dataset_id, dataset_name)
    channels = RGB_CHANNELS if case.rgb else {"0": channel_name}
    if samaug_channels:
        if case.rgb or case.priors is None:
            raise InputError(None, "SAMAug channels need a grey image and its SAMAug priors")
        channels = {**channels, **PRIOR_CHANNELS}
    with writing(folder):
        return _export(case, folder, dataset_name, channels, append, overwrite, samaug_channels)


def _export(case: ExportCase, folder: Path, dataset_name: str, channels: dict, append: bool, overwrite: bool,
            samaug_channels: bool) -> dict:
    info = read_json(folder / "dataset.json", None, NnunetDatasetJson)
    check_dataset_folder(folder, ("dataset.json",), "nnU-Net", case.name, append, overwrite)
    ending = FILE_ENDING if info is None else _appendable(info, folder / "dataset.json", channels)
    label_file = f"labelsTr/{case.name}{ending}"
    if (folder / label_file).exists() and not overwrite:
        raise NeedsOption(f"case {case.name!r} is already in {folder}; pass {{overwrite}} to replace it")

    ids = case.label_ids()
    table = label_table((info or {}).get("labels", {}), [case.name_of(i) for i in ids])
    mapping = {i: table[case.name_of(i)] for i in ids}
    lut = np.zeros(int(case.labels.max()) + 1, np.int64)
    for source, value in mapping.items():
        lut[source] = value
    remapped = lut[case.labels]
    remapped = remapped.astype(label_dtype(remapped))

    with Staging(folder, replace=overwrite) as staging:
        planes = [case.image[..., c] for c in range(3)] if case.rgb else [case.image]
        if samaug_channels:
            planes += [case.priors.seg.astype(np.float32), case.priors.boundary.astype(np.float32)]
        for c, plane in enumerate(planes):
            to_nifti(plane, case.meta).to_filename(str(staging.path(f"imagesTr/{case.name}_{c:04d}{ending}")))
        to_nifti(remapped, case.meta, remapped.dtype).to_filename(str(staging.path(label_file)))
        staging.index(label_file)  # nnU-Net finds cases by their label files: after the images
        cases = {p.name[: -len(ending)] for p in (folder / "labelsTr").glob(f"*{ending}")} | {case.name}
        fields = info or {"channel_names": channels, "labels": {}, "numTraining": 0, "file_ending": FILE_ENDING,
                          "name": dataset_name, "description": "Exported by napari-sammed; label ids of each case "
                          f"are mapped by class name (see {PROVENANCE_JSON})."}
        staging.write_json("dataset.json", {**fields, "labels": table, "numTraining": len(cases)})
        record_case(staging, folder, case, {
            "format": "nnU-Net v2", "channels": channels, "label_mapping": {str(k): {"name": case.name_of(k), "nnunet": v} for k, v in mapping.items()}})
        staging.commit()
    return {"dataset": folder, "labels": table, "mapping": mapping, "numTraining": len(cases)}


def _appendable(info: dict, source: Path, channels: dict) -> str:
    """The file ending of an existing dataset that this case can join consistently; else an error."""
    if info.get("channel_names") != channels:
        raise InputError(None, f"{source.parent} has channels {info.get('channel_names')}, this case {channels}")
    if info["file_ending"] not in NIFTI_ENDINGS:
        raise InputError(source, f"file_ending {info['file_ending']!r}: napari-sammed writes NIfTI "
                                 f"({' or '.join(NIFTI_ENDINGS)}); export to a new dataset")
    if "dataset" in info:
        raise InputError(source, "lists its cases under 'dataset'; napari-sammed adds cases as files in imagesTr "
                                 "and labelsTr only; export to a new dataset")
    return info["file_ending"]
