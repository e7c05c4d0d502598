"""Every model family napari-sammed runs, listed once: :data:`FAMILIES`.

A family is one architecture: its kinds (the names ``--kind`` takes, each with its published
spec), how its checkpoints are recognised, how its network is built, and the backend that runs
it. :func:`load_model` returns a :class:`~napari_sammed.core.model.loaded.LoadedModel` naming
its family, ``SliceEngine`` runs it with that family's backend, and ``info``/``convert`` detect
kinds here; nothing else lists or tells families apart.

How to add a model family
-------------------------
1. ``core/model/<family>.py`` (the model layer): a frozen spec dataclass with what
   :class:`~napari_sammed.core.model.specs.Spec` lists (``kind``, ``label``, ``img_size``,
   ``low_res_size``, ``preprocess``, ``describe()``) and ``as_kind(wanted)``; a
   ``detect(state_dict, name) -> spec | None`` that recognises its checkpoints by their keys;
   a ``build(spec, device)`` that returns the untrained network with the published key names
   (``device="meta"`` must allocate nothing; loading assigns the checkpoint's tensors).
2. ``core/engine/<family>_backend.py``: a :class:`~.backends.Backend` subclass taking the
   ``LoadedModel``; its abstract methods are what it must define. A ``segment_anything``
   ``Sam`` runs as it is under :class:`~.backends.NetworkBackend`.
3. One :class:`Family` entry in :data:`FAMILIES` (detection tries them in order).
   ``tests/core/test_families.py`` then loads a random-init checkpoint of every family through
   :func:`load_model` and holds its backend to the contract.

A new frame pre-processing goes to :mod:`.frame`, a new automatic-mask strategy to
``automatic_masks.STRATEGIES``; a backend names them (``preprocess``, ``auto_masks``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, NeedsOption
from ..io.hashing import sha256_file
from ..model import lite_medsam
from ..model.build import build_lite_medsam, build_sam_vit
from ..model.checkpoints import (
    CheckpointError,
    network_from_checkpoint,
    read_checkpoint,
    read_checkpoint_mapped,
    sha256_path,
    write_safetensors,
)
from ..model.lite_medsam import LiteMedSamSpec
from ..model.load import placement
from ..model.loaded import Bundled, LoadedModel, Weights
from ..model.specs import VIT_SPECS, Spec, detect_vit
from ..model.weight_free import WeightFreeSpec, build_weight_free
from .backends import Backend, SamVitBackend
from .lite_medsam_backend import LiteMedSamBackend
from .weight_free_backend import WeightFreeBackend


@dataclass(frozen=True)
class Family:
    """One model family: its kinds, how to recognise, build and run it."""

    name: str
    kinds: Mapping[str, Spec]  # the names --kind takes (aliases too) -> the published spec
    build: Callable[..., Any]  # build(spec, device) -> the untrained network
    backend: type[Backend]  # backend(loaded) runs a LoadedModel of this family
    detect: Callable[[Mapping[str, torch.Tensor], str], Spec | None] | None = None  # None: no checkpoint
    bundled: Bundled | None = None  # weights installed with a package


FAMILIES: tuple[Family, ...] = (
    Family("lite-medsam", {"lite-medsam": LiteMedSamSpec()}, build_lite_medsam, LiteMedSamBackend,
           detect=lite_medsam.detect, bundled=lite_medsam.BUNDLED),
    Family("vit", VIT_SPECS, build_sam_vit, SamVitBackend, detect=detect_vit),
    Family("weight-free", {"weight-free": WeightFreeSpec()}, build_weight_free,
           WeightFreeBackend),
)
#: What ``load_model()`` gives without a checkpoint: this kind's family's bundled weights.
DEFAULT_KIND = "lite-medsam"


def family_named(name: str) -> Family:
    """The family called ``name`` (what ``LoadedModel.family`` holds)."""
    for family in FAMILIES:
        if family.name == name:
            return family
    raise KeyError(f"no model family {name!r}; known: {', '.join(f.name for f in FAMILIES)}")


def family_of_kind(kind: str | None) -> Family | None:
    """The family a ``--kind`` name belongs to; None for an unknown name (or None)."""
    return next((family for family in FAMILIES if kind in family.kinds), None)


def takes_no_checkpoint(kind: str | None) -> bool:
    """True for the kinds of a family without weights (the weight-free segmenter)."""
    family = family_of_kind(kind)
    return family is not None and family.detect is None


def detect(state_dict: Mapping[str, torch.Tensor], name_hint: str = "") -> tuple[Family, Spec]:
    """The family and spec a state dict holds, from its keys and shapes (and file name: MedSAM)."""
    for family in FAMILIES:
        spec = family.detect(state_dict, name_hint) if family.detect is not None else None
        if spec is not None:
            return family, spec
    known = ", ".join(f.name for f in FAMILIES if f.detect is not None)
    raise CheckpointError(f"not a SAM-family checkpoint: its keys fit none of the known families ({known})")


def spec_for(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike,
             kind: str | None = None) -> tuple[Family, Spec]:
    """The detected family and spec, run as the requested ``kind`` if the weights can be it."""
    name = Path(path).name
    family, spec = detect(state_dict, name)
    if kind is None:
        return family, spec
    wanted = family_of_kind(kind)
    if wanted is None:
        known = ", ".join(k for f in FAMILIES for k in f.kinds)
        raise CheckpointError(f"unknown model kind {kind!r}; known: {known}")
    run_as = spec.as_kind(wanted.kinds[kind]) if wanted is family else None
    if run_as is None:
        raise CheckpointError(f"{name} looks like {spec.kind} ({spec.img_size}px), not {kind}")
    return family, run_as


def load_model(
    path: str | os.PathLike | None = None,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = torch.float32,
    kind: str | None = None,
    sha256: str | None = None,
) -> LoadedModel:
    """Load a model: a checkpoint (family and kind detected from its keys), or a bundled one.

    ``path=None`` loads the bundled weights of :data:`DEFAULT_KIND` (LiteMedSAM, size and
    sha256 verified). ``kind="weight-free"`` gives the intensity segmenter,
    which is no neural network. The image encoder runs in ``dtype``; the prompt encoder and mask
    decoder stay float32.
    """
    if takes_no_checkpoint(kind):
        if path:
            raise InputError(None, f"the {kind} engine takes no checkpoint (got {path})")
        family = family_of_kind(kind)
        spec = family.kinds[kind]
        return LoadedModel(family.name, spec, family.build(spec, "cpu"))
    if path is None or str(path) == "":
        source = family_of_kind(DEFAULT_KIND if kind is None else kind)
        bundled = None if source is None else source.bundled
        if bundled is None:
            default = family_of_kind(DEFAULT_KIND).kinds[DEFAULT_KIND].label
            raise InputError(None, f"no checkpoint given for {kind}; only {default} comes bundled")
        path, sha256 = bundled.path(), bundled.sha256()
    dev, dt = placement(device, dtype)
    ckpt = read_checkpoint(path, sha256)
    family, spec = spec_for(ckpt.state_dict, path, kind)
    network = network_from_checkpoint(ckpt, spec, family.build).to(dev)
    network.image_encoder.to(dt)  # every network family is a segment_anything Sam
    return LoadedModel(family.name, spec, network, Weights(str(ckpt.path), ckpt.sha256, ckpt.format))


def build_model(spec: Spec, device: str | torch.device = "cpu") -> LoadedModel:
    """An untrained (random-init) model of ``spec``, for tests and benchmarks; no weights recorded."""
    family = family_of_kind(spec.kind)
    if family is None:
        raise ValueError(f"unknown model kind {spec.kind!r}")
    return LoadedModel(family.name, spec, family.build(spec, device))


def backend_for(model: LoadedModel) -> Backend:
    """The backend of ``model``'s family, running it."""
    if not isinstance(model, LoadedModel):
        raise TypeError(f"not a model napari-sammed can run: {type(model).__name__} (use load_model)")
    return family_named(model.family).backend(model)


def describe_default() -> str:
    """One line naming what ``load_model(None)`` gives, for help texts and the dock."""
    return family_of_kind(DEFAULT_KIND).bundled.label


def model_info(path: str | os.PathLike | None = None, kind: str | None = None) -> dict:
    """What ``info`` prints: a checkpoint's kind, size, sha256, format, parameters and spec, read
    without building the network (seconds, not the half minute a load takes); no path: the
    bundled default's. A weight-free kind: its description."""
    if takes_no_checkpoint(kind):
        return backend_for(load_model(kind=kind)).describe()
    path = Path(path or family_of_kind(DEFAULT_KIND).bundled.path())
    state, fmt = read_checkpoint_mapped(path)
    _, spec = spec_for(state, path, kind)
    return {"kind": spec.kind, "label": spec.label,
            "checkpoint_path": str(path), "size_bytes": path.stat().st_size,
            "size": f"{path.stat().st_size / 2**20:.1f} MiB", "checkpoint_sha256": sha256_file(path),
            "format": fmt, "parameters": sum(t.numel() for t in state.values()), "spec": spec.describe()}


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False) -> str:
    """Write ``src``'s weights (only) to ``dst`` as safetensors, atomically; return its sha256.

    A ``<dst>.sha256`` file is written beside it; the file's metadata names the detected kind.
    The result loads without unpickling.
    """
    for path in (Path(dst), sha256_path(dst)):
        if path.exists() and not overwrite:
            raise NeedsOption(f"{path} exists; pass {{overwrite}} to replace it")
    ckpt = read_checkpoint(src)
    _, spec = detect(ckpt.state_dict, Path(src).name)
    metadata = {"kind": spec.kind, "source_sha256": ckpt.sha256, "source_name": Path(src).name}
    return write_safetensors(ckpt, dst, metadata)
