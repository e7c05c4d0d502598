"""Reading checkpoints safely, strict loading, writing safetensors. Family-agnostic: which model
a checkpoint holds is decided by ``core/engine/families.py``."""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..io.atomic import atomic_write
from ..io.error_text import first_line
from ..io.hashing import sha256_file
from . import safe_pickle
from .checkpoint_scan import CheckpointError, check_declared_storage, check_format, is_safetensors


@dataclass
class Checkpoint:
    """A checkpoint's tensors and what was read: path, sha256, format, neutralised globals."""

    state_dict: dict[str, torch.Tensor]
    path: Path
    sha256: str
    format: str  # "torch-weights-only", "torch-official (inert unpickling)", "safetensors"
    ignored: list[str]  # non-tensor globals that were neutralised, for the record


def read_checkpoint(path: str | os.PathLike, expected_sha256: str | None = None) -> Checkpoint:
    """Read a state dict from a torch ``.pth``/``.pt`` (official layouts too) or ``.safetensors``.

    Nothing pickled in the file is executed: weights-only loading first, and for files that
    carry pickled objects (the official SAM-Med2D ``{'model', 'optimizer'}`` layout) an
    unpickler that turns every non-tensor global into an inert placeholder.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    check_format(path)  # a file that is no checkpoint is refused before hashing it
    sha = sha256_file(path)
    if expected_sha256 and sha.lower() != expected_sha256.lower():
        raise CheckpointError(f"sha256 mismatch for {path.name}: expected {expected_sha256}, got {sha}")
    ignored: list[str] = []
    if is_safetensors(path):
        from safetensors.torch import load_file

        try:
            raw, fmt = load_file(str(path)), "safetensors"
        except Exception as error:  # noqa: BLE001 - any parse failure is a bad file
            raise CheckpointError(f"{path.name} is not a readable safetensors file ({error})") from None
    else:
        check_declared_storage(path)  # before torch allocates what the file declares
        raw, fmt, ignored = _torch_load(path)
    state = _extract_state_dict(raw, path)
    check_finite(state, path)
    return Checkpoint(state, path, sha, fmt, ignored)


def check_finite(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights holding NaN or infinity, naming the first such key (in file order)."""
    for key, tensor in state_dict.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not _all_finite(tensor):
            bad = "NaN" if bool(torch.isnan(tensor).any()) else "infinite"
            raise CheckpointError(f"{path}: weight {key!r} holds {bad} values (the first such key); "
                                  "the checkpoint is damaged or diverged in training")


def _all_finite(tensor: torch.Tensor) -> bool:
    """True if no element is NaN or infinite. A sum is NaN/inf when any element is, and summing
    is far cheaper than an element-wise isfinite on a whole SAM-Med2D; only a
    sum that is not finite (or overflows) is checked element by element."""
    if tensor.is_complex():
        return bool(torch.isfinite(tensor).all())
    if bool(torch.isfinite(tensor.sum())):  # an overflowing sum falls through to the exact check
        return True
    return bool(torch.isfinite(tensor).all())


def _torch_load(path: Path):
    """A file :func:`check_format` let through, read weights-only, else with inert placeholders."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True), "torch-weights-only", []
    except pickle.UnpicklingError:
        pass  # pickled objects beside the weights: read them inertly below
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path.name} is truncated or corrupt ({first_line(error)})") from None
    module = safe_pickle.PickleModule()
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path.name} is truncated or corrupt ({first_line(error)})") from None
    return raw, "torch-official (inert unpickling)", sorted(set(module.replaced))


def _extract_state_dict(raw, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(raw, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(raw.get(key), dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not raw:
        raise CheckpointError(f"{path.name} holds no state dict (found {type(raw).__name__})")
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path.name} holds no tensors")
    prefix = "module."
    if all(k.startswith(prefix) for k in tensors):
        tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def load_state_strict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load every key exactly; otherwise raise with the missing/unexpected/mis-shaped keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = sorted(
        f"{k} {tuple(state_dict[k].shape)}!={tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict) if state_dict[k].shape != expected[k].shape
    )
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
            if keys:
                more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
                parts.append(f"{label} {len(keys)}: {', '.join(keys[:5])}{more}")
        raise CheckpointError("checkpoint does not match the model: " + "; ".join(parts))
    model.load_state_dict(state_dict, strict=True, assign=True)


def network_from_checkpoint(ckpt: Checkpoint, spec, build) -> nn.Module:
    """``build(spec)``'s network (built on the meta device: nothing allocated twice) with
    ``ckpt``'s weights loaded strictly, as float32 on the CPU."""
    model = build(spec, device="meta")
    load_state_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()})
    _restore_unsaved_buffers(model)
    return model


def read_checkpoint_mapped(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """A checkpoint's tensors and format, read without copying the weights (for ``info``: seconds,
    not the half minute a load takes).

    Tensors are memory-mapped; nothing pickled is executed; NaN/infinite weights are refused as
    a load would. Shapes are checked only when the model is built.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    check_format(path)
    if is_safetensors(path):
        from safetensors.torch import load_file

        try:
            state, fmt = load_file(str(path)), "safetensors"  # memory-mapped by safetensors
        except Exception as error:  # noqa: BLE001 - any parse failure is a bad file
            raise CheckpointError(f"{path.name} is not a readable safetensors file ({error})") from None
    else:
        check_declared_storage(path)
        raw, fmt = _torch_load_mapped(path)
        state = _extract_state_dict(raw, path)
    check_finite(state, path)  # cheap on mapped tensors (the sha256 reads the file anyway)
    return state, fmt


def _torch_load_mapped(path: Path):
    """:func:`_torch_load` with the tensors memory-mapped where the file allows (zip layout)."""
    if not zipfile.is_zipfile(path):
        raw, fmt, _ = _torch_load(path)
        return raw, fmt
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True), "torch-weights-only"
    except pickle.UnpicklingError:
        pass
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path.name} is truncated or corrupt ({first_line(error)})") from None
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False, mmap=True,
                         pickle_module=safe_pickle.PickleModule())
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path.name} is truncated or corrupt ({first_line(error)})") from None
    return raw, "torch-official (inert unpickling)"


def _restore_unsaved_buffers(model: nn.Module) -> None:
    """Non-persistent buffers are not in a state dict, so a meta build leaves them empty:
    ``pixel_mean``/``pixel_std``, and whatever a module rebuilds in ``reset_buffers``."""
    from .specs import PIXEL_MEAN, PIXEL_STD

    model.pixel_mean = torch.tensor(PIXEL_MEAN).view(-1, 1, 1)
    model.pixel_std = torch.tensor(PIXEL_STD).view(-1, 1, 1)
    for module in model.modules():
        if hasattr(module, "reset_buffers"):
            module.reset_buffers()


def write_safetensors(ckpt: Checkpoint, dst: str | os.PathLike, metadata: dict[str, str]) -> str:
    """Write ``ckpt``'s weights (only) to ``dst`` as safetensors, atomically; return its sha256.

    A ``<dst>.sha256`` file is written beside it. The result loads without unpickling.
    """
    from safetensors.torch import save_file

    dst = Path(dst)
    tensors = {k: v.contiguous() for k, v in ckpt.state_dict.items()}
    atomic_write(dst, lambda tmp: save_file(tensors, tmp, metadata=metadata), prefix=".convert-")
    sha = sha256_file(dst)
    atomic_write(sha256_path(dst), lambda tmp: Path(tmp).write_text(f"{sha}  {dst.name}\n"))
    return sha


def sha256_path(dst: str | os.PathLike) -> Path:
    """The ``<dst>.sha256`` file :func:`convert_checkpoint` writes beside its output."""
    return Path(f"{dst}.sha256")
