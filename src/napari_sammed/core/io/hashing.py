"""sha256 fingerprints: of a file, of an array's contents, of a JSON-able record."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """sha256 (hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def data_hash(array: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and bytes (identifies the volume an embedding belongs to)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.shape}|{array.dtype.str}|".encode())
    flat = array.reshape(-1).view(np.uint8)
    step = 1 << 26
    for start in range(0, flat.size, step):
        digest.update(memoryview(flat[start : start + step]))
    return digest.hexdigest()


def json_hash(record) -> str:
    """sha256 (hex) of a JSON-able record, independent of key order."""
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
