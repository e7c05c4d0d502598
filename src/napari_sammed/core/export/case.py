"""One case to export (image + labels + geometry + names + provenance), validated up front."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.hashing import data_hash, sha256_file
from ..io.qc import TraceRow
from ..io.windowing import Window
from ..io.write import label_dtype

CASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def class_name(name: str) -> str:
    """A file-name-safe class name: ``"kidney right"`` -> ``"kidney_right"``."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "_", str(name)).strip("_")
    if not cleaned:
        raise InputError(None, f"class name {name!r} has no letters or digits")
    return cleaned


def parse_class_names(text: str | None) -> dict[int, str]:
    """``"1=spleen, 5=liver"`` -> {1: "spleen", 5: "liver"}."""
    names: dict[int, str] = {}
    for part in (text or "").replace(";", ",").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise InputError(None, f"class names look like '1=spleen, 5=liver'; got {part.strip()!r}")
        key, value = (t.strip() for t in part.split("=", 1))
        if not key.isdigit() or int(key) == 0:
            raise InputError(None, f"class names: {key!r} in {part.strip()!r} is not a label id (1, 2, ...)")
        if int(key) in names:
            raise InputError(None, f"class names: label {int(key)} is named twice ({names[int(key)]!r} and {value!r})")
        names[int(key)] = value
    return names


@dataclass
class Priors:
    """SAMAug's maps of a case's image, slice by slice along z (same spatial shape as the image)."""

    seg: np.ndarray  # segmentation prior, float32
    boundary: np.ndarray  # boundary prior, float32 0/1
    augmented: np.ndarray  # (..., 3) uint8: the augmented image as the SAMAug command's PNGs
    made_by: dict = field(default_factory=dict)  # engine, window, automatic-mask settings

    def check(self, spatial: tuple[int, ...]) -> None:
        shapes = (self.seg.shape, self.boundary.shape, self.augmented.shape[:-1])
        if any(shape != tuple(spatial) for shape in shapes) or self.augmented.shape[-1:] != (3,):
            raise InputError(None, f"SAMAug priors of shapes {[tuple(s) for s in shapes]} do not fit the image "
                                   f"{tuple(spatial)}; compute them again for this image")


@dataclass
class ExportCase:
    """``image`` (Z, Y, X), (Y, X) or (Y, X, 3) RGB and ``labels`` of the same spatial shape."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    meta: dict = field(default_factory=dict)  # geometry: Volume.layer_metadata() / layer.metadata
    class_names: dict[int, str] = field(default_factory=dict)
    window: Window | None = None
    engine: dict | None = None  # SliceEngine.describe() of the model that made the labels
    trace: list[TraceRow] | None = None
    sources: list[str] = field(default_factory=list)  # files the image/labels were read from
    priors: Priors | None = None  # SAMAug maps, for exports that carry them
    image_sha256: str | None = None  # data_hash(image) when the caller has it already (batch)

    def __post_init__(self) -> None:
        self.image = np.asarray(self.image)
        self.labels = np.asarray(self.labels)
        self.class_names = {int(k): str(v) for k, v in (self.class_names or {}).items()}

    @property
    def rgb(self) -> bool:
        return self.image.ndim == 3 and self.image.shape[-1] == 3 and self.labels.ndim == 2

    def validate(self) -> None:
        if not CASE_NAME.fullmatch(self.name or ""):
            raise InputError(None, f"case name {self.name!r}: use letters, digits, '_', '-' or '.', starting with a letter or digit")
        spatial = self.image.shape[:2] if self.rgb else self.image.shape
        if spatial != self.labels.shape:
            raise InputError(None, f"labels have shape {self.labels.shape} but the image {self.image.shape}; "
                                   "export needs labels drawn on this image")
        if self.labels.ndim not in (2, 3):
            raise InputError(None, f"expected 2D or 3D labels, got shape {self.labels.shape}")
        label_dtype(self.labels)  # integers, non-negative
        if self.priors is not None:
            self.priors.check(spatial)
        if not self.labels.any():
            raise InputError(None, "the labels are empty: nothing to export")
        self.check_class_names()

    def check_class_names(self) -> None:
        """Refuse two labels whose names become the same file-name-safe class name
        (``"kidney right"`` and ``"kidney_right"``): their masks would merge silently."""
        seen: dict[str, int] = {}
        for label in self.label_ids():
            cleaned = self.name_of(label)
            if cleaned in seen:
                first = seen[cleaned]
                raise InputError(
                    None,
                    f"class names {self.class_names.get(first, f'label_{first}')!r} (label {first}) and "
                    f"{self.class_names.get(label, f'label_{label}')!r} (label {label}) both become "
                    f"{cleaned!r} in file names; give them distinct names")
            seen[cleaned] = label

    def label_ids(self) -> list[int]:
        return [int(v) for v in np.unique(self.labels) if v != 0]

    def name_of(self, label: int) -> str:
        return class_name(self.class_names.get(label, f"label_{label}"))

    def provenance(self, extra: dict | None = None) -> dict:
        from ... import __version__

        engine = self.engine or {"kind": "none", "note": "labels exported as given (no model recorded)"}
        return {
            "napari_sammed": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "case": self.name,
            "model": {"kind": engine.get("kind"),
                      "checkpoint_sha256": engine.get("checkpoint_sha256") or ("weight-free" if engine.get("kind") == "weight-free" else None),
                      **{k: v for k, v in engine.items() if k not in ("kind", "checkpoint_sha256")}},
            "window": None if self.window is None else self.window.as_dict(),
            "image_sha256": self.image_sha256 or data_hash(self.image),
            "labels_sha256": data_hash(self.labels),
            "sources": {str(p): sha256_file(p) for p in self.sources if Path(p).is_file()},
            "class_names": {str(k): v for k, v in sorted(self.class_names.items())},
            "spacing": self.meta.get("spacing"),
            "qc_trace_rows": 0 if self.trace is None else len(self.trace),
            "samaug": None if self.priors is None else self.priors.made_by,
            **(extra or {}),
        }
