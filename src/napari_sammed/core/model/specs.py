"""Model kinds and their sizes: SAM-Med2D (256 px, adapters), Meta SAM vit_b/l/h, MedSAM,
LiteMedSAM (TinyViT, 256 px). Plain data: building a network is :mod:`.build`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .lite_medsam import LiteMedSamSpec

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build a model and to pre-process its input.

    ``preprocess`` is ``"sam-med2d"`` (normalise, nearest-resize to a square), ``"sam"``
    (resize longest side, normalise, pad) or ``"medsam"`` (min-max to [0, 1], square resize).
    """

    kind: str
    img_size: int
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    adapters: bool
    preprocess: str
    window_size: int = 14
    patch_size: int = 16
    family = "vit"

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def low_res_size(self) -> int:
        return 4 * self.grid

    @property
    def is_official_size(self) -> bool:
        base = MODEL_SPECS.get(self.kind)
        return base is not None and replace(base) == self

    def describe(self) -> dict:
        out = asdict(self)
        out["global_attn_indexes"] = list(self.global_attn_indexes)
        out["official_size"] = self.is_official_size
        return out


_VIT_B = dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11))
MODEL_SPECS: dict[str, ModelSpec] = {
    "sam-med2d": ModelSpec("sam-med2d", 256, adapters=True, preprocess="sam-med2d", **_VIT_B),
    "sam_vit_b": ModelSpec("sam_vit_b", 1024, adapters=False, preprocess="sam", **_VIT_B),
    "sam_vit_l": ModelSpec("sam_vit_l", 1024, 1024, 24, 16, (5, 11, 17, 23), False, "sam"),
    "sam_vit_h": ModelSpec("sam_vit_h", 1024, 1280, 32, 16, (7, 15, 23, 31), False, "sam"),
    "medsam": ModelSpec("medsam", 1024, adapters=False, preprocess="medsam", **_VIT_B),
    "lite-medsam": LiteMedSamSpec(),
}
