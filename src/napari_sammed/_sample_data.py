"""Sample data: real abdominal CT and MR (TotalSegmentator test files, Apache-2.0) + labels."""

from __future__ import annotations

from pathlib import Path

from .core.io.read import read_nifti

DATA = Path(__file__).parent / "_data"

#: TotalSegmentator class names for the organs the samples are used for (first labels of the
#: "total" and "total_mr" tasks, which agree on these).
ORGAN_NAMES = {1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 5: "liver",
               6: "stomach"}


def _sample(image: str, labels: str, name: str, window: tuple[float, float] | None) -> list[tuple]:
    vol = read_nifti(DATA / image)
    seg = read_nifti(DATA / labels)
    image_kwargs = {"name": name, "scale": vol.spacing, "metadata": vol.layer_metadata(), "colormap": "gray"}
    if window is not None:
        image_kwargs["contrast_limits"] = window
    label_kwargs = {"name": f"{name} reference labels", "scale": seg.spacing,
                    "metadata": seg.layer_metadata() | {"class_names": ORGAN_NAMES}, "opacity": 0.4,
                    "visible": False}
    return [(vol.data, image_kwargs, "image"), (seg.data, label_kwargs, "labels")]


def sample_ct() -> list[tuple]:
    """CT, 122x101x30 at 3 mm, int16 HU; shown with the soft-tissue window (W400/L40)."""
    return _sample("example_ct_sm.nii.gz", "example_seg.nii.gz", "CT", (-160.0, 240.0))


def sample_mr() -> list[tuple]:
    """MR, 117x91x20 at 3 mm."""
    return _sample("example_mr_sm.nii.gz", "example_seg_mr.nii.gz", "MR", None)
