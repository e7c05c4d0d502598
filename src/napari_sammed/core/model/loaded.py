"""What loading gives: a :class:`LoadedModel` record, and where its weights came from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .specs import Spec


@dataclass(frozen=True)
class Weights:
    """The checkpoint a network's weights were read from."""

    path: str
    sha256: str
    format: str  # "torch-weights-only", "torch-official (inert unpickling)", "safetensors"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run: its family (a key of ``core/engine/families.FAMILIES``), spec,
    network and weights. ``network`` is a ``segment_anything`` ``Sam`` for the network families
    and the :class:`~.weight_free.WeightFreeModel` for the weight-free one; ``weights`` is None for a
    random-init network (tests, benchmarks) and for the weight-free family."""

    family: str
    spec: Spec
    network: Any
    weights: Weights | None = None


@dataclass(frozen=True)
class Bundled:
    """Weights shipped inside an installed package: what they are called, where (size-checked)
    and their published sha256 (checked when the file is read)."""

    label: str
    path: Callable[[], Path]
    sha256: Callable[[], str]
