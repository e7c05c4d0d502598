"""What a checkpoint file declares, checked before anything is allocated or hashed.

``torch.load`` allocates every storage at the size the pickle declares before reading it, and a
tensor may be a view (``expand``: stride 0) with far more elements than its storage, which the
first ``.float()`` or ``.contiguous()`` materialises: a 1.5 kB file can ask for 4 GiB. The
pickle is walked here with an unpickler that builds no tensor, and the file's kind is told from
its first bytes, so that a large file that is no checkpoint is refused before it is hashed.
"""

from __future__ import annotations

import math
import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from ..io.error_text import first_line
from . import safe_pickle


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line a user can act on."""


def is_safetensors(path: Path) -> bool:
    """A safetensors file: an 8-byte header length, then the JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and not zipfile.is_zipfile(path)


def is_tar(path: Path) -> bool:
    """A tar archive (torch's legacy format), told by its ustar magic: ``tarfile.is_tarfile`` tries
    every decompressor and reads a 20 GiB file of zeros for minutes."""
    with open(path, "rb") as f:
        return f.read(263)[257:262] == b"ustar"


def check_format(path: Path) -> None:
    """Refuse, from its first bytes, a file that is no checkpoint (before it is hashed: a 20 GiB
    file would take minutes) and a safetensors header longer than the file."""
    size = path.stat().st_size
    if is_safetensors(path):
        with open(path, "rb") as f:
            declared = int.from_bytes(f.read(8), "little")
        if declared > size - 8:
            raise CheckpointError(f"{path}: safetensors header declares {declared:,} bytes but the file holds "
                                  f"{size:,}: truncated or not a safetensors file")
        return
    if zipfile.is_zipfile(path) or is_tar(path):
        return  # check_declared_storage reads these
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        raise CheckpointError(f"{path}: truncated or corrupt (incomplete zip archive)")
    if head[:1] != b"\x80":
        raise CheckpointError(f"{path}: not a PyTorch or safetensors checkpoint")


class _DeclaredStorage:
    """What the pickle of a torch checkpoint names as a storage, without reading it."""

    def __init__(self, key: str, numel: int, itemsize: int) -> None:
        self.key, self.numel, self.nbytes = key, numel, numel * itemsize


class _StorageType:
    def __init__(self, name: str) -> None:
        cls = getattr(torch, name, None)
        if not (isinstance(cls, type) and name.endswith("Storage")):
            raise pickle.UnpicklingError(f"unknown storage type torch.{name}")
        with warnings.catch_warnings():  # TypedStorage classes warn that they are deprecated
            warnings.simplefilter("ignore")
            self.itemsize = 1 if name == "UntypedStorage" else torch._utils._element_size(cls.dtype)


def _record(*args, **kwargs) -> None:
    return None


def _check_view(storage, offset=0, size=(), stride=(), *rest, **kwargs) -> None:
    """``_rebuild_tensor(_v2)``'s arguments: a view must lie inside its storage and hold no more
    elements than it (an expanded view, stride 0, repeats elements)."""
    if not isinstance(storage, _DeclaredStorage):
        raise pickle.UnpicklingError("a tensor without a declared storage")
    try:
        size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(offset)
    except (TypeError, ValueError):
        raise pickle.UnpicklingError(f"bad tensor view of storage {storage.key!r}") from None
    numel = math.prod(size)
    if len(size) != len(stride) or offset < 0 or min(size, default=0) < 0 or min(stride, default=0) < 0:
        raise pickle.UnpicklingError(f"bad tensor view of storage {storage.key!r}")
    if numel and offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True)) >= storage.numel:
        raise CheckpointError(f"a tensor of shape {size} reaches beyond its storage {storage.key!r} "
                              f"({storage.numel:,} elements)")
    if numel > storage.numel:
        raise CheckpointError(f"a tensor of shape {size} ({numel:,} elements) is an expanded view of storage "
                              f"{storage.key!r} ({storage.numel:,} elements, strides {stride}); refusing to "
                              "materialise it (save the checkpoint with contiguous tensors)")


class _ScanUnpickler(safe_pickle.Unpickler):
    """Walks a checkpoint's pickle collecting declared storages and checking views; builds no tensor."""

    def __init__(self, file) -> None:
        super().__init__(file)
        self.storages: dict[str, int] = {}

    def find_class(self, module: str, name: str):
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _check_view
        if module == "torch._utils" and name.startswith("_rebuild"):
            return _record
        return super().find_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] in ("storage", b"storage")):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"bad storage declaration for key {key!r}")
        self.storages[key] = numel * storage_type.itemsize
        return _DeclaredStorage(key, numel, storage_type.itemsize)


def check_declared_storage(path: Path) -> None:
    """Refuse a torch checkpoint whose pickle declares more tensor bytes than the file holds, or
    a tensor that is an expanded view of its storage.

    Zip checkpoints: each declared storage against its record's size. Legacy (pre-1.6)
    checkpoints: the declared total against the file size.
    """
    size = path.stat().st_size
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                records = {info.filename: info.file_size for info in archive.infolist()}
                pickles = [n for n in records if n.endswith("/data.pkl") or n == "data.pkl"]
                if len(pickles) != 1:
                    raise CheckpointError(f"{path}: not a PyTorch checkpoint (no single data.pkl in the zip)")
                prefix = pickles[0][: -len("data.pkl")]
                if records[pickles[0]] > size * 1100:
                    raise CheckpointError(f"{path}: data.pkl declares an impossible size")
                scan = _ScanUnpickler(archive.open(pickles[0]))
                scan.load()
            for key, nbytes in scan.storages.items():
                held = records.get(f"{prefix}data/{key}")
                if held is None:
                    raise CheckpointError(f"{path}: tensor storage {key!r} is declared but missing from the file")
                if nbytes > held:
                    raise CheckpointError(f"{path}: tensor storage {key!r} declares {nbytes:,} bytes but the file "
                                          f"holds {held:,}; refusing to allocate it (corrupt or crafted checkpoint)")
            return
        if is_tar(path):
            raise CheckpointError(f"{path}: the legacy tar checkpoint format is not supported; re-save it with "
                                  "a current PyTorch")
        with open(path, "rb") as f:
            if f.read(1) != b"\x80":
                return  # not a pickle: check_format says what it is
            f.seek(0)
            for _ in range(3):  # magic number, protocol version, system info
                safe_pickle.load(f)
            scan = _ScanUnpickler(f)
            scan.load()
        total = sum(scan.storages.values())
        if total > size:
            raise CheckpointError(f"{path}: tensor storages declare {total:,} bytes but the file holds {size:,}; "
                                  "refusing to allocate them (truncated, corrupt or crafted checkpoint)")
    except CheckpointError as error:
        text = str(error)
        raise CheckpointError(text if text.startswith(f"{path}: ") else f"{path}: {text}") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError, ValueError, TypeError, KeyError,
            AttributeError, IndexError, RecursionError) as error:
        raise CheckpointError(f"{path}: truncated or corrupt ({first_line(error)})") from None
