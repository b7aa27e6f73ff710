"""Content fingerprints: a fast hash of every byte of a set of arrays.

XXH3-128 (``xxhash``) runs near memory bandwidth, so fingerprinting costs little next
to training; SHA-256 would be several times slower and buys nothing here (this is
change detection, not security). Each array's path, dtype and shape are hashed with
its bytes, so a reshaped or retyped variable never collides with the original.
"""
from __future__ import annotations

from typing import Iterable, Tuple

import numpy as np
import xxhash


def array_bytes(array: np.ndarray) -> memoryview:
    """A zero-copy byte view of ``array`` (copies only if it is not C-contiguous)."""
    return memoryview(np.ascontiguousarray(array)).cast("B")


def fingerprint_arrays(items: Iterable[Tuple[str, np.ndarray]]) -> str:
    """Hex XXH3-128 over ``(name, array)`` pairs, in the order given."""
    digest = xxhash.xxh3_128()
    for name, array in items:
        array = np.asarray(array)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}\n".encode())
        digest.update(array_bytes(array))
    return digest.hexdigest()
