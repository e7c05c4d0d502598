"""``load_model``: the one entry point from a checkpoint path (or none) to a ready model."""

from __future__ import annotations

import os

import torch

from .checkpoints import model_from_checkpoint
from .classical import ClassicalModel
from .engine import resolve_device

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def load_model(
    path: str | os.PathLike | None,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = torch.float32,
    kind: str | None = None,
    sha256: str | None = None,
):
    """Load a SAM-family checkpoint (kind detected from its keys), or the weight-free engine.

    ``path=None`` returns :class:`ClassicalModel`, the clearly labelled offline default.
    The image encoder runs in ``dtype``; prompt encoder and mask decoder stay float32.
    """
    if path is None or str(path) == "":
        return ClassicalModel()
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    if dev.type == "cpu" and dt == torch.float16:
        raise ValueError("float16 is not supported on the CPU; use bf16 or fp32")
    model = model_from_checkpoint(path, kind=kind, expected_sha256=sha256).to(dev)
    model.image_encoder.to(dt)
    return model
