"""Where and in what precision a network is loaded: device and dtype names, checked before any
file is read. ``load_model`` itself is in ``core/engine/families.py``, beside the registry it reads."""

from __future__ import annotations

import torch

from ..errors import InputError

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
    """The torch device for a user's device name, or an InputError saying what can be used here.

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
        raise InputError(None, f"unknown device {str(device)!r}; use one of {', '.join(DEVICE_NAMES)} ({here})") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(None, f"unsupported device {str(device)!r}; use one of {', '.join(DEVICE_NAMES)} ({here})")
    if dev.type == "cuda" and not torch.cuda.is_available():
        why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise InputError(None, f"device {str(device)!r} is not available: {why} ({here})")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(None, f"device {str(device)!r} is not available: {torch.cuda.device_count()} CUDA GPU(s) "
                               f"({here})")
    if dev.type == "mps" and not _mps_available():
        raise InputError(None, f"device {str(device)!r} is not available: no Apple MPS backend ({here})")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """A dtype name (fp32, bf16, fp16, ...) or a torch dtype -> the torch dtype (default float32)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise InputError(None, f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def placement(device: str | torch.device | None, dtype: str | torch.dtype | None) -> tuple[torch.device, torch.dtype]:
    """The device and encoder dtype a network is loaded to, refused in one line before any file is read."""
    dev, dt = check_device(device), resolve_dtype(dtype)
    if dev.type == "cpu" and dt == torch.float16:
        raise InputError(None, "float16 is not supported on the CPU; use bf16 or fp32")
    return dev, dt
