"""Reading checkpoints safely, detecting the model kind, strict loading, conversion."""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..io.atomic import atomic_write
from ..io.hashing import sha256_file
from ..io.inputs import NeedsOption
from . import safe_pickle
from .build import build_model
from .checkpoint_scan import CheckpointError, check_declared_storage, check_format, is_safetensors
from .lite_medsam import LiteMedSamSpec
from .specs import MODEL_SPECS, ModelSpec


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
    is far cheaper than an element-wise isfinite (5 s -> well under 1 s for SAM-Med2D); only a
    sum that is not finite (or overflows) is checked element by element."""
    if tensor.is_complex():
        return bool(torch.isfinite(tensor).all())
    if bool(torch.isfinite(tensor.sum())):  # an overflowing sum falls through to the exact check
        return True
    return bool(torch.isfinite(tensor).all())


def _torch_load(path: Path):
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(4)
        if head == b"PK\x03\x04":
            raise CheckpointError(f"{path.name} is truncated or corrupt (incomplete zip archive)")
        if head[:1] != b"\x80":
            raise CheckpointError(f"{path.name} is not a PyTorch or safetensors checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True), "torch-weights-only", []
    except pickle.UnpicklingError:
        pass  # pickled objects beside the weights: read them inertly below
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path.name} is truncated or corrupt ({_first_line(error)})") from None
    module = safe_pickle.PickleModule()
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path.name} is truncated or corrupt ({_first_line(error)})") from None
    return raw, "torch-official (inert unpickling)", sorted(set(module.replaced))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


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


def detect_spec(state_dict: dict[str, torch.Tensor], name_hint: str = "") -> ModelSpec | LiteMedSamSpec:
    """Infer the model kind and size from keys and shapes (MedSAM only by name: its keys are SAM's)."""
    if "image_encoder.patch_embed.seq.0.c.weight" in state_dict:
        return LiteMedSamSpec()  # TinyViT's patch embedding; sizes are checked by the strict load
    pos = state_dict.get("image_encoder.pos_embed")
    if pos is None or pos.ndim != 4:
        raise CheckpointError("not a SAM-family checkpoint: no image_encoder.pos_embed (1, G, G, D)")
    grid, dim = int(pos.shape[1]), int(pos.shape[3])
    blocks = sorted({int(k.split(".")[2]) for k in state_dict if k.startswith("image_encoder.blocks.")})
    depth = len(blocks)
    adapters = any(".Adapter." in k for k in state_dict)
    rel = state_dict.get("image_encoder.blocks.0.attn.rel_pos_h")
    if rel is None or depth == 0:
        raise CheckpointError("not a SAM-family checkpoint: no encoder blocks with relative positions")
    head_dim = int(rel.shape[1])
    global_idx = tuple(
        i for i in blocks
        if state_dict.get(f"image_encoder.blocks.{i}.attn.rel_pos_h", rel).shape[0] == 2 * grid - 1
    )
    img_size = grid * 16
    if adapters:
        kind, preprocess = "sam-med2d", "sam-med2d"
    elif "medsam" in name_hint.lower():
        kind, preprocess = "medsam", "medsam"
    else:
        kind = {768: "sam_vit_b", 1024: "sam_vit_l", 1280: "sam_vit_h"}.get(dim, "sam_vit_b")
        preprocess = "sam"
    return ModelSpec(kind, img_size, dim, depth, dim // head_dim, global_idx, adapters, preprocess)


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


def model_from_checkpoint(
    path: str | os.PathLike,
    kind: str | None = None,
    expected_sha256: str | None = None,
) -> nn.Module:
    """Build the detected (or requested) model and load the checkpoint strictly, on the CPU."""
    ckpt = read_checkpoint(path, expected_sha256)
    spec = spec_for(ckpt.state_dict, path, kind)
    model = build_model(spec, device="meta")
    load_state_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()})
    _restore_unsaved_buffers(model)
    model.checkpoint_path = str(ckpt.path)
    model.checkpoint_sha256 = ckpt.sha256
    model.checkpoint_format = ckpt.format
    return model


def spec_for(state_dict: dict[str, torch.Tensor], path: str | os.PathLike, kind: str | None = None):
    """The detected spec, or the requested ``kind`` if the checkpoint can be it."""
    spec = detect_spec(state_dict, Path(path).name)
    if kind is not None:
        if kind not in MODEL_SPECS:
            raise CheckpointError(f"unknown model kind {kind!r}; known: {', '.join(MODEL_SPECS)}")
        wanted = MODEL_SPECS[kind]
        if (wanted.family, wanted.adapters, wanted.img_size) != (spec.family, spec.adapters, spec.img_size):
            raise CheckpointError(
                f"{Path(path).name} looks like {spec.kind} ({spec.img_size}px, adapters={spec.adapters}),"
                f" not {kind}"
            )
        if spec.family == "vit":
            spec = ModelSpec(kind, spec.img_size, spec.embed_dim, spec.depth, spec.num_heads,
                             spec.global_attn_indexes, spec.adapters, wanted.preprocess)
    return spec


LABELS = {"lite-medsam": "LiteMedSAM", "sam-med2d": "SAM-Med2D", "medsam": "MedSAM"}


def checkpoint_info(path: str | os.PathLike, kind: str | None = None) -> dict:
    """What a checkpoint is - kind, size, sha256, format, parameters, architecture - read without
    building the model or scanning the weights (``info``: seconds, not the half minute a load takes).

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
    spec = spec_for(state, path, kind)
    return {"kind": spec.kind, "label": LABELS.get(spec.kind, f"SAM {spec.kind[4:]}"),
            "checkpoint_path": str(path), "size_bytes": path.stat().st_size,
            "size": f"{path.stat().st_size / 2**20:.1f} MiB", "checkpoint_sha256": sha256_file(path),
            "format": fmt, "parameters": sum(t.numel() for t in state.values()), "spec": spec.describe()}


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
        raise CheckpointError(f"{path.name} is truncated or corrupt ({_first_line(error)})") from None
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False, mmap=True,
                         pickle_module=safe_pickle.PickleModule())
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path.name} is truncated or corrupt ({_first_line(error)})") from None
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


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False) -> str:
    """Write ``src``'s weights (only) to ``dst`` as safetensors, atomically; return its sha256.

    A ``<dst>.sha256`` file is written beside it. The result loads without unpickling.
    """
    from safetensors.torch import save_file

    dst = Path(dst)
    for path in (dst, sha256_path(dst)):
        if path.exists() and not overwrite:
            raise NeedsOption(f"{path} exists; pass {{overwrite}} to replace it")
    ckpt = read_checkpoint(src)
    spec = detect_spec(ckpt.state_dict, Path(src).name)
    tensors = {k: v.contiguous() for k, v in ckpt.state_dict.items()}
    metadata = {"kind": spec.kind, "source_sha256": ckpt.sha256, "source_name": Path(src).name}
    atomic_write(dst, lambda tmp: save_file(tensors, tmp, metadata=metadata), prefix=".convert-")
    sha = sha256_file(dst)
    atomic_write(sha256_path(dst), lambda tmp: Path(tmp).write_text(f"{sha}  {dst.name}\n"))
    return sha


def sha256_path(dst: str | os.PathLike) -> Path:
    """The ``<dst>.sha256`` file :func:`convert_checkpoint` writes beside its output."""
    return Path(f"{dst}.sha256")
