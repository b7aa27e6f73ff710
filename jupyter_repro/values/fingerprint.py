"""Content fingerprints: what a value holds, hashed so that equal content gives equal
hex digests in every process, and unequal content different ones (XXH3-128). The
digests of arrays alone (a model's variables, a stored tensor's checksum:
``fingerprint_arrays``, ``ArraysFingerprint``, ``bytes_digest``) are in ``arrays.py``.

A value is hashed by **content** or not at all. Arrays, tensors, DataFrames, plain
Python values and containers by their data; functions and classes written by the user
by their code (bytecode, constants, defaults, closure values and the globals they read);
library functions and classes by their qualified name (their code is the environment's,
recorded apart); objects by their class and attributes. What cannot be known that way
raises ``Unfingerprintable`` with a reason ("x is a generator"): the caller then says
"not compared" instead of guessing. ``consumable`` marks the data a fit can still
fingerprint batch by batch as it reads it (``run/observed.py``).

``_Walker`` is the one pass over a value: the dispatch and containers here, each kind of
value hashed by a mixin in the module named for it (``arrays``, ``code``, ``keras_values``,
``objects``; a ``tf.data`` graph and a ``tf.function`` are read in ``tf_data``).
"""
from __future__ import annotations

import functools
import io
import sys
import types
from typing import Optional

import numpy as np
import xxhash

from ..errors import Unfingerprintable
from .arrays import ArrayHashing, is_tensor
from .code import CodeHashing, library_global
from .keras_values import KerasHashing, is_keras_distribution, is_keras_object
from .objects import ObjectHashing, kind_of
from .tensors import host_view
from .tf_data import dataset_graph_bytes, is_tf_dataset, is_tf_function

_GENERATOR_TYPES = (types.GeneratorType, types.AsyncGeneratorType, types.CoroutineType)
_SIMPLE = (type(None), bool, int, float, complex, str, bytes)
_CALLABLES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, functools.partial, type)
_MAX_OBJECTS = 200_000


def fingerprint_value(value, exclude: Optional[dict] = None) -> str:
    """Hex XXH3-128 of what ``value`` holds, stable across processes.

    ``exclude`` maps ``id(obj)`` to a label hashed in place of ``obj`` (the model being
    trained: its state is the snapshot's). Raises ``Unfingerprintable``.
    """
    digest = xxhash.xxh3_128()
    hash_into(digest, value, exclude)
    return digest.hexdigest()


def hash_into(digest, value, exclude: Optional[dict] = None) -> None:
    """Feed what ``value`` holds into ``digest`` (an ``xxhash`` object): one batch of a
    stream among others (``run/observed.py``). Raises ``Unfingerprintable``."""
    _Walker(digest, exclude or {}).feed(value)


class _Walker(ArrayHashing, CodeHashing, KerasHashing, ObjectHashing):
    """One pass over a value; objects met twice are hashed once, then by reference."""

    def __init__(self, digest, exclude: dict):
        self.digest = digest
        self.exclude = exclude
        self.seen = {}
        self.keep = []  # objects in ``seen``, alive until the walk ends (ids stay unique)

    def put(self, text: str) -> None:
        self.digest.update(text.encode())

    def feed(self, value) -> None:
        if isinstance(value, _SIMPLE):
            self.put(f"{type(value).__name__}:{value!r};")
            return
        key = id(value)
        if key in self.exclude:
            self.put(f"excluded:{self.exclude[key]};")
            return
        if key in self.seen:
            self.put(f"ref:{self.seen[key]};")
            return
        if len(self.seen) >= _MAX_OBJECTS:
            raise Unfingerprintable(f"holds more than {_MAX_OBJECTS:,} objects")
        self.seen[key] = len(self.seen)
        self.keep.append(value)
        self._feed(value)

    def _feed(self, value) -> None:  # noqa: C901 -- one dispatch table, read top to bottom
        if isinstance(value, (np.ndarray, np.generic)):
            self.array(np.asarray(value))
        elif isinstance(value, (list, tuple, dict, set, frozenset)):
            self.container(value)
        elif isinstance(value, _GENERATOR_TYPES) or _is_iterator(value):
            raise Unfingerprintable(f"is a {kind_of(value)}", consumable=isinstance(value, types.GeneratorType)
                                    or hasattr(value, "__next__"))
        elif isinstance(value, types.ModuleType):
            self.module(value)
        elif isinstance(value, _CALLABLES) or isinstance(value, np.ufunc):
            self.callable(value)
        elif (type(value).__module__ or "").startswith("pandas") and hasattr(value, "to_numpy"):
            self.pandas(value)
        elif is_tf_dataset(value):
            self.put("tf.data;")
            self.digest.update(dataset_graph_bytes(value))
        elif _is_consumable(value):
            raise Unfingerprintable(f"is a {kind_of(value)}", consumable=True)
        elif is_tensor(value):
            self.array(host_view(value))
        elif is_keras_object(value):
            self.keras_object(value)
        elif is_keras_distribution(value):
            self.distribution(value)
        elif is_tf_function(value):
            self.put("tf.function;")
            self.feed(value.python_function)
            self.feed(getattr(value, "_jit_compile", None))
        elif library_global(value):  # np.mean (a dispatcher object), tf.math.add...: the environment's
            self.put(f"fn:{value.__module__}.{value.__qualname__};")
        elif isinstance(value, io.IOBase):
            raise Unfingerprintable(f"is an open file ({kind_of(value)})")
        else:
            self.instance(value)

    def container(self, value) -> None:
        """Lists and tuples in order; dicts by sorted key; sets by their items' sorted digests."""
        if isinstance(value, (list, tuple)):
            self.put(f"{type(value).__name__}[{len(value)}];")
            for item in value:
                self.feed(item)
        elif isinstance(value, dict):
            self.put(f"dict[{len(value)}];")
            for item_key in sorted(value, key=_sort_key):
                self.feed(item_key)
                self.feed(value[item_key])
        else:
            self.put(f"set[{len(value)}];")
            self.put(",".join(sorted(fingerprint_value(item, self.exclude) for item in value)))


def _sort_key(key):
    return (type(key).__name__, repr(key) if isinstance(key, _SIMPLE) else str(id(key)))


def _is_iterator(value) -> bool:
    return hasattr(type(value), "__next__") and hasattr(type(value), "__iter__")


def _is_consumable(value) -> bool:
    """Data a fit reads piece by piece: a Keras PyDataset or a PyTorch DataLoader."""
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(value, keras.utils.PyDataset):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.utils.data.DataLoader)
