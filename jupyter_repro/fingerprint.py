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


def fingerprint_value(value) -> str:
    """Hex XXH3-128 of what a ``fit`` argument holds, stable across processes.

    Arrays, tensors, DataFrames and ``tf.data`` datasets are hashed by content; plain
    Python values by their JSON form; containers element by element; Keras callbacks
    by class and constructor arguments. Any other object counts by its type alone
    (never its ``repr``, which holds memory addresses).
    """
    digest = xxhash.xxh3_128()
    _feed(digest, value)
    return digest.hexdigest()


_SIMPLE = (type(None), bool, int, float, str)


def _feed(digest, value) -> None:
    if isinstance(value, _SIMPLE):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, np.ndarray) or hasattr(value, "__array_interface__"):
        array = np.asarray(value)
        digest.update(f"nd:{array.dtype.str}:{array.shape};".encode())
        if array.dtype.hasobject:
            digest.update(repr(array.tolist()).encode())
        else:
            digest.update(array_bytes(array))
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__}[{len(value)}];".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, dict):
        digest.update(f"dict[{len(value)}];".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif _is_pandas(value):
        _feed_pandas(digest, value)
    elif _is_tf_dataset(value):
        digest.update(b"tf.data;")
        digest.update(_dataset_graph_bytes(value))
    elif hasattr(value, "dtype") and hasattr(value, "shape") and (hasattr(value, "__array__") or hasattr(value, "numpy")):
        _feed(digest, _tensor_to_numpy(value))  # a TensorFlow, JAX or PyTorch tensor
    else:
        digest.update(f"object:{type(value).__module__}.{type(value).__qualname__};".encode())
        _feed(digest, _constructor_arguments(value))


def _tensor_to_numpy(tensor) -> np.ndarray:
    if hasattr(tensor, "detach"):  # PyTorch: off the graph and the GPU first
        tensor = tensor.detach().cpu()
    return np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor)


def _is_pandas(value) -> bool:
    return type(value).__module__.startswith("pandas") and hasattr(value, "to_numpy")


def _feed_pandas(digest, frame) -> None:
    import pandas as pd

    digest.update(f"pd:{type(frame).__name__}:{frame.shape};".encode())
    columns = list(frame.items()) if isinstance(frame, pd.DataFrame) else [(frame.name, frame)]
    _feed(digest, [str(name) for name, _ in columns])
    digest.update(pd.util.hash_pandas_object(frame.index, index=False).to_numpy().tobytes())
    for _, column in columns:
        values = column.to_numpy()
        if values.dtype.hasobject:
            values = pd.util.hash_pandas_object(column, index=False).to_numpy()
        digest.update(f"{values.dtype.str};".encode())
        digest.update(array_bytes(values))


def _is_tf_dataset(value) -> bool:
    return type(value).__module__.startswith("tensorflow") and hasattr(value, "_as_serialized_graph")


def _dataset_graph_bytes(dataset) -> bytes:
    """The dataset's graph (data constants and shuffle seeds included), without the
    per-process counters TensorFlow writes into it (metadata ids, resource names)."""
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    for node in graph.node:
        if "metadata" in node.attr:
            del node.attr["metadata"]
        if node.op == "Const" and node.attr["dtype"].type == tf.resource.as_datatype_enum:
            for handle in node.attr["value"].tensor.resource_handle_val:
                handle.name = ""
    return graph.SerializeToString(deterministic=True)


def _constructor_arguments(value) -> dict:
    """The simple-valued attributes named like ``__init__``'s parameters: a callback's
    configuration (``patience``, ``monitor``...) without its run-time state."""
    import inspect

    try:
        names = inspect.signature(type(value).__init__).parameters
    except (TypeError, ValueError):
        return {}
    found = {}
    for name in names:
        attribute = getattr(value, name, None)
        if isinstance(attribute, _SIMPLE) and name != "self":
            found[name] = attribute
    return found
