"""One entry for every export format: ``export_case(case, options)``; CLI, dock and batch call it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import InputError
from ..settings import check_range
from .case import ExportCase
from .nnunet import export_nnunet
from .sammed2d import export_sammed2d
from .stacks import export_stack

FORMATS = ("sammed2d", "nnunet", "tiff", "zarr", "png")


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """Everything an export needs besides the case; frozen so a worker thread can own a copy.

    The one source of the export settings: the CLI's options, a plan's ``export:`` block and the
    export dock take their names and defaults from here (``core.jobs.settings``)."""

    format: Literal["sammed2d", "nnunet", "tiff", "zarr", "png"]
    folder: str
    axis: Literal["z", "y", "x"] = "z"  # slice axis (SAM-Med2D)
    split: Literal["auto", "train", "test"] = "auto"  # auto: a seeded hash of the case name
    seed: int = 0
    test_fraction: float = 0.2
    all_slices: bool = False
    split_components: bool = False
    dataset_id: int = 1  # nnU-Net
    dataset_name: str = "Annotations"
    channel: str = "CT"
    # Stacks: a dataset is image + labels, and the image is written as the labels' geometry
    # and orientation (a DICOM series or an in-memory layer has no file to pair with).
    include_image: bool = True
    append: bool = False
    overwrite: bool = False
    samaug_channels: bool = False  # nnU-Net: SAMAug priors as channels 1 and 2
    samaug_images: bool = False  # SAM-Med2D: SAMAug's augmented RGB as the images

    @property
    def needs_priors(self) -> bool:
        return self.samaug_channels or self.samaug_images  # each checked against the format below

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InputError(None, f"unknown export format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.axis not in ("z", "y", "x"):
            raise InputError(None, f"slice axis must be z, y or x; got {self.axis!r}")
        if str(self.folder).strip() in ("", "."):
            raise InputError(None, "choose a target folder")
        if self.samaug_channels and self.format != "nnunet":
            raise InputError(None, "SAMAug channels are an nnU-Net option (format nnunet)")
        if self.samaug_images and self.format != "sammed2d":
            raise InputError(None, "SAMAug images are a SAM-Med2D option (format sammed2d)")
        check_range(self, "dataset_id", 1, 999)
        check_range(self, "test_fraction", 0.0, 1.0)


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote: the dataset folder, a summary for people and the format's details
    (SAM-Med2D: split, images, masks; nnU-Net: labels, mapping, numTraining; stacks: files)."""

    dataset: Path
    summary: str
    details: dict


def export_case(case: ExportCase, options: ExportOptions) -> ExportReport:
    """Export ``case`` in the format ``options`` name."""
    o = options
    if o.format == "sammed2d":
        details = export_sammed2d(case, o.folder, "zyx".index(o.axis), o.split, o.seed, o.test_fraction,
                                  o.all_slices, o.split_components, o.append, o.overwrite, o.samaug_images)
        summary = (f"{details['dataset']}: case {case.name} -> {details['split']}, "
                   f"{details['images']} images, {details['masks']} masks")
    elif o.format == "nnunet":
        details = export_nnunet(case, o.folder, o.dataset_id, o.dataset_name, o.channel or "CT", o.append,
                                o.overwrite, o.samaug_channels)
        mapping = ", ".join(f"{k}->{v}" for k, v in details["mapping"].items())
        summary = (f"{details['dataset']}: case {case.name}, {details['numTraining']} training cases; "
                   f"labels {details['labels']}\nlabel mapping (layer id -> nnU-Net value): {mapping}")
    else:
        files = export_stack(case, o.folder, o.format, o.include_image, o.overwrite)
        details = {"files": files, "dataset": Path(files[0]).parent}
        summary = "wrote " + ", ".join(str(p) for p in files)
    return ExportReport(Path(details["dataset"]), summary, details)
