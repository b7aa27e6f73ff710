"""Arrays by their bytes: the digests a model's variables, a stored tensor and a data array
are known by, and how arrays, tensors and pandas objects are hashed inside a value.

XXH3-128 (``xxhash``) runs near memory bandwidth, so fingerprinting costs little next
to training; SHA-256 would be several times slower and buys nothing here (this is
change detection; signing is ``store/signing.py``'s job). Each array's dtype and shape
are hashed with its bytes, so a reshaped or retyped array never collides with the original.
"""
from __future__ import annotations

import functools
from typing import Iterable, Tuple

import numpy as np
import xxhash

#: bytes hashed at a time when one read feeds two digests: small enough to stay in a core's cache
PIECE = 1 << 16


def array_bytes(array: np.ndarray) -> memoryview:
    """A zero-copy byte view of ``array`` (copies only if it is not C-contiguous).

    Viewed as ``uint8`` rather than through the buffer protocol, which refuses dtypes it
    has no format letter for (bfloat16 and the float8 types of ``ml_dtypes``).
    """
    return memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


@functools.lru_cache(maxsize=256)
def dtype_tag(dtype: np.dtype) -> str:
    """``"<f4:float32"``: byte order and size, and the name that tells bfloat16 from float16
    (computing ``dtype.name`` costs microseconds, so once per dtype). Values of any kind."""
    return f"{dtype.str}:{dtype.name}"


@functools.lru_cache(maxsize=256)
def variable_dtype_tag(dtype: np.dtype) -> str:
    """``<f4``; ``<V2:bfloat16`` for a dtype NumPy does not define itself: model states.

    ``dtype.str`` alone names NumPy's own dtypes uniquely, but every ``ml_dtypes`` type
    of one width shares it (``<V2`` for bfloat16; ``<V1`` for several float8 kinds), so
    their name is added; the fingerprints of weights recorded before stay what they were.
    An array unpickled by Dask has a float32 equal to NumPy's but not NumPy's own object
    (``isbuiltin`` 0): it is still ``<f4``, or the same weights sent to a worker would
    fingerprint as other weights.
    """
    return dtype.str if dtype.isbuiltin == 1 or (dtype.kind != "V" and _numpys_own(dtype)) \
        else f"{dtype.str}:{dtype.name}"


def _numpys_own(dtype: np.dtype) -> bool:
    """Equal to the NumPy dtype its ``str`` names; False where NumPy names none (an ``ml_dtypes``
    float8 says ``<f1``, which NumPy does not understand)."""
    try:
        return np.dtype(dtype.str) == dtype
    except TypeError:
        return False


class ArraysFingerprint:
    """Hex XXH3-128 over ``(name, array)`` pairs fed one at a time: a model's variables
    are hashed as they are read, never all held at once."""

    def __init__(self):
        self._digest = xxhash.xxh3_128()

    def update(self, name: str, array: np.ndarray, alongside=None) -> None:
        """Feed ``(name, array)``; with ``alongside`` (an ``xxh3_128``), the array's bytes go
        to it too, a piece at a time while the piece is still in the CPU's cache: the
        fingerprint and a variable's own digest from one read of memory, not two."""
        array = np.asarray(array)
        self._digest.update(f"{name}|{variable_dtype_tag(array.dtype)}|{array.shape}\n".encode())
        data = array_bytes(array)
        if alongside is None:
            self._digest.update(data)
            return
        for start in range(0, len(data), PIECE):
            piece = data[start:start + PIECE]
            self._digest.update(piece)
            alongside.update(piece)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def fingerprint_arrays(items: Iterable[Tuple[str, np.ndarray]]) -> str:
    """Hex XXH3-128 over ``(name, array)`` pairs, in the order given."""
    digest = ArraysFingerprint()
    for name, array in items:
        digest.update(name, array)
    return digest.hexdigest()


def bytes_digest(array: np.ndarray) -> str:
    """Hex XXH3-128 of an array's bytes alone: the checksum a stored tensor carries, and
    how a variable is known unchanged (its dtype and shape are checked apart)."""
    return xxhash.xxh3_128_hexdigest(array_bytes(array))


def is_tensor(value) -> bool:
    """A backend tensor or variable (TensorFlow, JAX, PyTorch, Keras)."""
    module = type(value).__module__ or ""
    return (module.startswith(("tensorflow", "jax", "jaxlib", "torch", "keras"))
            and hasattr(value, "dtype") and hasattr(value, "shape")
            and (hasattr(value, "numpy") or hasattr(value, "__array__")))


class ArrayHashing:
    """``_Walker``'s arrays and frames: by dtype, shape and bytes."""

    def array(self, array: np.ndarray) -> None:
        self.put(f"nd:{dtype_tag(array.dtype)}:{array.shape};")
        if array.dtype.hasobject:
            for item in array.ravel().tolist():
                self.feed(item)
        else:
            self.digest.update(array_bytes(array))

    def pandas(self, frame) -> None:
        import pandas as pd

        self.put(f"pd:{type(frame).__name__}:{frame.shape};")
        if isinstance(frame, pd.Index):
            self.digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
            return
        columns = list(frame.items()) if isinstance(frame, pd.DataFrame) else [(frame.name, frame)]
        self.feed([str(name) for name, _ in columns])
        self.digest.update(pd.util.hash_pandas_object(frame.index, index=False).to_numpy().tobytes())
        for _, column in columns:
            values = column.to_numpy()
            if values.dtype.hasobject:
                values = pd.util.hash_pandas_object(column, index=False).to_numpy()
            self.put(f"{values.dtype.str};")
            self.digest.update(array_bytes(values))
