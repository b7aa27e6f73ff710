"""What the model saw: data that cannot be hashed before training, hashed as it is read.

A Python generator, a ``keras.utils.PyDataset``, a ``tf.data`` pipeline that runs Python
or reads files, a PyTorch ``DataLoader``: their content exists only once they are
consumed. ``Observed.wrap`` hands ``fit`` the same data through a thin layer that hashes
each batch as the fit reads it; after the fit, ``fingerprints`` says what was read.

Read-ahead (Keras prefetches from generators) reads a few batches more than training
uses, and how many depends on thread timing. So an ordered source is fingerprinted by
the first ``steps`` batches it yielded, ``steps`` being the number of training steps
that ran: every batch the model trained on is among them, and the count does not depend
on timing. An indexed source (a PyDataset) by the set of (index, batch) pairs it served.
"""
from __future__ import annotations

import sys
import threading
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import xxhash

from ..errors import Unfingerprintable
from ..values.arrays import array_bytes, dtype_tag
from ..values.fingerprint import hash_into
from ..values.code import is_library_file


def batch_digest(batch) -> bytes:
    """XXH3-128 of one batch; a tuple of plain arrays (the usual batch) without the walker,
    whose generality costs more than hashing 32 rows."""
    digest = xxhash.xxh3_128()
    items = batch if isinstance(batch, tuple) else (batch,)
    if all(type(item) is np.ndarray and not item.dtype.hasobject for item in items):
        digest.update(f"batch[{len(items)}];".encode())
        for item in items:
            digest.update(f"{dtype_tag(item.dtype)}:{item.shape};".encode())
            digest.update(array_bytes(item) if item.flags.c_contiguous else item.tobytes())  # one copy at most
    else:
        hash_into(digest, batch)
    return digest.digest()


class _Stream:
    """The digests of one source's batches, in the order they were read."""

    def __init__(self, name: str, kind: str, ordered: bool = True):
        self.name, self.kind, self.ordered = name, kind, ordered
        self.digests: List = []
        self.lock = threading.Lock()
        self.undo: Optional[Callable[[], None]] = None

    def add(self, batch, index=None) -> None:
        digest = batch_digest(batch)
        with self.lock:
            self.digests.append(digest if index is None else (index, digest))

    def fingerprint(self, steps: Optional[int]) -> str:
        with self.lock:
            digests = list(self.digests)
        if self.ordered:
            if steps is not None:
                digests = digests[:steps]
        else:
            digests = sorted(digests)
        total = xxhash.xxh3_128(f"batches:{self.kind}:{len(digests)};".encode())
        for item in digests:
            total.update(item if isinstance(item, bytes) else f"{item[0]}:".encode() + item[1])
        return total.hexdigest()


class Observed:
    """Wraps the opaque data arguments of ``fit`` calls; undoes every wrap on ``close``."""

    def __init__(self):
        self.streams: List[Tuple[str, _Stream]] = []

    def wrap(self, name: str, value):
        """``value`` to hand to ``fit`` in its place; raises ``Unfingerprintable`` when its
        batches cannot be observed either (then the run is not compared)."""
        stream, wrapped = _wrapper(name, value)
        self.streams.append((name, stream))
        return wrapped

    def fingerprints(self, steps: Optional[int]) -> Dict[str, str]:
        """One fingerprint per wrapped source: ``x`` by the first ``steps`` batches
        (training steps), others (validation data) by every batch read."""
        return {name: stream.fingerprint(steps if name == "x" else None) for name, stream in self.streams}

    def close(self) -> None:
        for _, stream in self.streams:
            if stream.undo is not None:
                stream.undo()
                stream.undo = None


def _wrapper(name: str, value):
    keras = sys.modules.get("keras")
    torch = sys.modules.get("torch")
    if keras is not None and isinstance(value, keras.utils.PyDataset):
        return _py_dataset(name, value)
    if torch is not None and isinstance(value, torch.utils.data.DataLoader):
        return _swap_iter(name, value, "DataLoader")
    if type(value).__module__.startswith("tensorflow") and hasattr(value, "_as_serialized_graph"):
        return _tf_dataset(name, value)
    if hasattr(type(value), "__next__"):
        stream = _Stream(name, "iterator")

        def batches():
            for batch in value:
                stream.add(batch)
                yield batch
        return stream, batches()
    raise Unfingerprintable(f"is a {type(value).__name__}, whose batches cannot be observed")


def _py_dataset(name: str, dataset):
    if getattr(dataset, "use_multiprocessing", False):
        raise Unfingerprintable("is a PyDataset read by worker processes (use_multiprocessing=True), "
                                "whose batches cannot be observed")
    stream = _Stream(name, "PyDataset", ordered=False)
    original = type(dataset)

    def getitem(self, index):
        batch = original.__getitem__(self, index)
        stream.add(batch, int(index))
        return batch

    _swap_class(dataset, stream, {"__getitem__": getitem})
    return stream, dataset


def _swap_iter(name: str, loader, kind: str):
    stream = _Stream(name, kind)
    original = type(loader)

    def iterate(self):
        for batch in original.__iter__(self):
            stream.add(batch)
            yield batch

    _swap_class(loader, stream, {"__iter__": iterate})
    return stream, loader


def _swap_class(value, stream: _Stream, methods: dict) -> None:
    """Give ``value`` a subclass of its own class that observes, until ``stream.undo``.
    (Special methods are looked up on the class, so an instance attribute would not do.)"""
    original = type(value)
    observing = type(original.__name__, (original,), dict(methods, __module__=original.__module__,
                                                          __qualname__=original.__qualname__))
    object.__setattr__(value, "__class__", observing)

    def undo():
        object.__setattr__(value, "__class__", original)
    stream.undo = undo


def _tf_dataset(name: str, dataset):
    import tensorflow as tf

    stream = _Stream(name, "tf.data")

    def record(*flat):
        stream.add(tuple(tensor.numpy() for tensor in flat))
        return 0

    def observe(*element):
        flat = tf.nest.flatten(element)
        done = tf.py_function(record, flat, Tout=tf.int32)
        with tf.control_dependencies([done]):
            observed = tf.nest.map_structure(tf.identity, element)
        return observed[0] if len(observed) == 1 else observed

    return stream, dataset.map(observe, deterministic=True)


class FilesRead:
    """Context manager: the files the code inside opens for reading (Python's ``open``
    audit event: ``open``, ``np.load``, ``pd.read_csv``...), library and source files left
    out. A training loop that reads its data from disk then counts by the files' content."""

    _active: List["FilesRead"] = []
    _hooked = False

    def __init__(self):
        self.paths: List[str] = []

    def __enter__(self):
        if not FilesRead._hooked:  # an audit hook cannot be removed: one per process, idle when unused
            sys.addaudithook(_audit)
            FilesRead._hooked = True
        FilesRead._active.append(self)
        return self

    def __exit__(self, *exc):
        FilesRead._active.remove(self)
        return False

    def fingerprints(self) -> Dict[str, str]:
        """``{"file PATH": XXH3-128 of its bytes now}``; raises ``Unfingerprintable`` for one
        that can no longer be read."""
        found = {}
        for path in self.paths:
            digest = xxhash.xxh3_128()
            try:
                with open(path, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 24), b""):
                        digest.update(chunk)
            except OSError as error:
                raise Unfingerprintable(f"file {path} was read but cannot be read again ({error.strerror})") from error
            found[f"file {path}"] = digest.hexdigest()
        return found


_SOURCE_SUFFIXES = (".py", ".pyc", ".so", ".pyd", ".pth", ".json", ".ipynb")


def _audit(event, args):
    if event != "open" or not FilesRead._active:
        return
    import os


    path, mode, flags = args
    if not isinstance(path, (str, bytes, os.PathLike)) or isinstance(path, int):
        return
    writing = (mode is not None and any(c in str(mode) for c in "wax+")) or \
        (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
    path = os.fsdecode(path)
    if writing or path.endswith(_SOURCE_SUFFIXES) or not os.path.isfile(path) or is_library_file(path):
        return
    for recorder in FilesRead._active:
        if path not in recorder.paths:
            recorder.paths.append(path)
