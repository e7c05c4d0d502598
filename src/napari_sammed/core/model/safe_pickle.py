"""A pickle module for ``torch.load`` that never runs code named by the file.

Official SAM-Med2D checkpoints pickle a whole ``torch.optim.Adam`` object next to the weights,
so ``torch.load(weights_only=True)`` refuses them. Rather than falling back to full unpickling
(which executes whatever callables the file names), every global outside a small allow-list of
tensor-rebuilding helpers and plain containers becomes an inert placeholder: it can be
"called" and "constructed", but does nothing and keeps nothing.
"""

from __future__ import annotations

import collections
import pickle
from typing import Any

import torch

_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "tuple"): tuple,
    ("builtins", "list"): list,
    ("builtins", "dict"): dict,
}
_DTYPES = {name for name in dir(torch) if isinstance(getattr(torch, name, None), torch.dtype)}


class Inert:
    """Stands in for any non-allow-listed global; records its name, does nothing else."""

    _qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Inert:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Inert:
        return type(self)()

    def __repr__(self) -> str:
        return f"<inert {self._qualname}>"


def _placeholder(module: str, name: str) -> type[Inert]:
    return type(name, (Inert,), {"_qualname": f"{module}.{name}", "__module__": "napari_sammed.inert"})


class Unpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` returns inert placeholders outside the allow-list and
    records their names in ``replaced``."""

    replaced: list[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not hasattr(self, "replaced"):  # a PickleModule's subclass shares its list
            self.replaced = []

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _DTYPES:
            return getattr(torch, name)
        self.replaced.append(f"{module}.{name}")
        return _placeholder(module, name)


class PickleModule:
    """A stand-in for the ``pickle`` module, for ``torch.load(..., pickle_module=PickleModule())``
    (torch subclasses its ``Unpickler``); ``replaced`` lists every global made inert."""

    __name__ = "napari_sammed.safe_pickle"

    def __init__(self) -> None:
        self.replaced: list[str] = []
        self.Unpickler = type("Unpickler", (Unpickler,), {"replaced": self.replaced})

    def load(self, file: Any, **kwargs: Any) -> Any:
        """Unpickle one object from ``file``, inertly."""
        return self.Unpickler(file, **kwargs).load()


def load(file: Any, **kwargs: Any) -> Any:
    """``pickle.load`` that never runs code named by the file."""
    return Unpickler(file, **kwargs).load()
