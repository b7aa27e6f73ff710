"""The stored tensor file: safetensors, with a manifest and checksums in its metadata.

A snapshot or cached state is one ``.safetensors`` file, the format the field reads
(huggingface/safetensors): an 8-byte little-endian header length, a JSON header giving
each tensor's dtype code (``F32``, ``BF16``, ``F8_E4M3``...), shape and byte range, then
the raw little-endian bytes, tensors ordered by item size so each is aligned to it (as
the ``safetensors`` writer does), so any safetensors reader opens it — as the right
dtype, bfloat16 and float8 included. This module writes the format itself: it streams
one variable at a time from the model (the ``safetensors`` writers want every tensor in
memory at once, and its NumPy API has no bfloat16 or float8). A dtype safetensors has no
code for is stored as its bytes (``U8``); the manifest keeps what it is.

``__metadata__["jupyter_repro"]`` is the manifest (JSON): the variables in model order,
each with its path, shape, dtype, tensor name, offset and the XXH3-128 of its bytes; the
fingerprint; ``extra`` (a History); and, for cached states, this installation's
signature over all of it (``store/signing.py``). Writes go to a temporary file, fsync'd, then
renamed: no reader ever sees half a file. Reading maps the file (nothing is copied); the
header must agree with the manifest and every tensor with its checksum before any array
is handed out, else ``CorruptSnapshot`` says in one line what is wrong.
"""
from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import xxhash

from .atomic import atomic_file
from ..errors import ReproError
from ..values.arrays import array_bytes
from ..values.tensors import numpy_dtype

FORMAT = 2
SUFFIX = ".safetensors"
KEY = "jupyter_repro"  # the __metadata__ entry holding the manifest
_MAX_HEADER = 100_000_000  # safetensors' own limit

#: dtype name -> safetensors dtype code (the codes its readers know).
CODES = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16", "uint32": "U32",
         "int32": "I32", "uint64": "U64", "int64": "I64", "float16": "F16", "bfloat16": "BF16",
         "float32": "F32", "float64": "F64", "complex64": "C64", "float8_e4m3fn": "F8_E4M3",
         "float8_e5m2": "F8_E5M2", "float8_e4m3fnuz": "F8_E4M3FNUZ", "float8_e5m2fnuz": "F8_E5M2FNUZ"}
_HEX128 = "0" * 32  # placeholder of an XXH3-128 hex digest, filled in once the bytes are written


class CorruptSnapshot(ReproError):
    """A stored snapshot or state whose bytes do not match its manifest."""


def _nbytes(shape, dtype: str) -> int:
    return int(np.prod(shape, dtype=np.int64)) * numpy_dtype(dtype).itemsize


def _layout(specs: Sequence) -> List[dict]:
    """The manifest's variables, with tensor names (paths, made unique) and offsets;
    laid out by item size, largest first, so every tensor is aligned to its own."""
    variables, names = [], set()
    for index, (path, shape, dtype) in enumerate(specs):
        name = path if path not in names else f"{path}#{index}"
        names.add(name)
        variables.append({"path": path, "shape": [int(d) for d in shape], "dtype": str(dtype), "tensor": name,
                          "offset": 0, "xxh3": _HEX128})
    order = sorted(range(len(variables)), key=lambda i: -numpy_dtype(variables[i]["dtype"]).itemsize)
    offset = 0
    for i in order:
        variables[i]["offset"] = offset
        offset += _nbytes(variables[i]["shape"], variables[i]["dtype"])
    return variables


def _header(manifest: dict) -> bytes:
    """The safetensors header for ``manifest``, padded with spaces to a multiple of 8."""
    entries: Dict[str, object] = {"__metadata__": {KEY: json.dumps(manifest, sort_keys=True)}}
    for variable in manifest["variables"]:
        size = _nbytes(variable["shape"], variable["dtype"])
        code = CODES.get(variable["dtype"])
        entries[variable["tensor"]] = {"dtype": code or "U8", "shape": variable["shape"] if code else [size],
                                       "data_offsets": [variable["offset"], variable["offset"] + size]}
    text = json.dumps(entries).encode()
    return text + b" " * (-(8 + len(text)) % 8)


def write(path: Path, manifest: dict, specs: Sequence, read: Callable[[int], np.ndarray],
          sign: Optional[Callable[[dict], dict]] = None) -> dict:
    """Write the variables ``read(i)`` gives for ``specs`` (path, shape, dtype) to ``path``:
    one variable in memory at a time. ``manifest`` (JSON-able) is completed with the layout
    and checksums, signed with ``sign`` if given, stored in the header and returned."""
    manifest = dict(manifest, format=FORMAT, variables=_layout(specs))
    manifest["nbytes"] = sum(_nbytes(v["shape"], v["dtype"]) for v in manifest["variables"])
    placeholder = _header(sign(manifest) if sign else manifest)  # signatures have a fixed length
    with atomic_file(path) as handle:
        handle.write(struct.pack("<Q", len(placeholder)) + placeholder)
        order = sorted(range(len(specs)), key=lambda i: manifest["variables"][i]["offset"])
        for i in order:
            variable = manifest["variables"][i]
            array = np.asarray(read(i))
            if list(array.shape) != variable["shape"] or str(array.dtype) != variable["dtype"]:
                raise ValueError(f"variable #{i} '{variable['path']}' is {array.shape} {array.dtype}, "
                                 f"not {tuple(variable['shape'])} {variable['dtype']}")
            data = array_bytes(array)
            variable["xxh3"] = xxhash.xxh3_128_hexdigest(data)
            handle.write(data)
            del array, data
        if sign:
            manifest = sign(manifest)
        header = _header(manifest)
        if len(header) != len(placeholder):
            raise RuntimeError("the header changed size while the data was written")  # a bug, never data
        handle.seek(8)
        handle.write(header)
    return manifest


def read_manifest(path: Path) -> dict:
    """The manifest in ``path``'s header (the data is not read); ``CorruptSnapshot`` if
    the header cannot be read, ``OSError`` if the file cannot be opened."""
    with open(path, "rb") as handle:
        return _parse(path, handle, os.fstat(handle.fileno()).st_size)[0]


#: the type of each field of a variable in the manifest
_VARIABLE = {"path": str, "shape": list, "dtype": str, "tensor": str, "offset": int, "xxh3": str}


def _malformed(variable) -> Optional[str]:
    """What is wrong with one variable's entry in a manifest, or None."""
    if not isinstance(variable, dict):
        return f"a variable is {type(variable).__name__}, not an object"
    for key, kind in _VARIABLE.items():
        if not isinstance(variable.get(key), kind) or isinstance(variable.get(key), bool):
            return f"variable {variable.get('path')!r} has no {kind.__name__} '{key}'"
    if not all(type(d) is int and d >= 0 for d in variable["shape"]) or variable["offset"] < 0:
        return f"variable {variable['path']!r} has a negative or non-integer shape or offset"
    if len(variable["xxh3"]) != 32:
        return f"variable {variable['path']!r} has a checksum that is not an XXH3-128"
    return None


def _parse(path, handle, size: int):
    """(manifest, data start) after checking the header against the manifest and the size.
    Reads through the file object (``os.pread`` does not exist on Windows)."""
    def corrupt(reason):
        return CorruptSnapshot(f"snapshot file {path} {reason}; it was not loaded")

    handle.seek(0)
    head = handle.read(8)
    if len(head) < 8:
        raise corrupt(f"is truncated ({size:,} bytes, not even a header)")
    length = struct.unpack("<Q", head)[0]
    if length > min(_MAX_HEADER, size - 8):
        raise corrupt(f"is truncated or not a safetensors file (header of {length:,} bytes in {size:,})")
    try:
        entries = json.loads(handle.read(length))
        manifest = json.loads(entries["__metadata__"][KEY])
        variables, nbytes = manifest["variables"], int(manifest["nbytes"])
        for variable in variables:
            problem = _malformed(variable)
            if problem:
                raise corrupt(f"has a malformed manifest ({problem})")
            size_of = _nbytes(variable["shape"], variable["dtype"])
            code = CODES.get(variable["dtype"])
            expected = {"dtype": code or "U8", "shape": variable["shape"] if code else [size_of],
                        "data_offsets": [variable["offset"], variable["offset"] + size_of]}
            if entries.get(variable["tensor"]) != expected:
                raise corrupt(f"has a header that disagrees with its manifest at '{variable['tensor']}'")
    except (ValueError, KeyError, TypeError) as error:
        raise corrupt(f"has an unreadable header ({type(error).__name__})") from None
    if len(entries) != len(variables) + 1:
        raise corrupt("has tensors its manifest does not list")
    start = 8 + length
    if size != start + nbytes:
        state = "truncated" if size < start + nbytes else "longer than its header says"
        raise corrupt(f"is {state} ({size - start:,} of {nbytes:,} data bytes)")
    return manifest, start


class TensorFile:
    """A stored file, open and mapped read-only: its arrays are views of the page cache,
    never a second copy in the process. The descriptor stays open, so a file removed by
    eviction (or another kernel) stays readable for as long as this object lives."""

    def __init__(self, path: os.PathLike):
        self.path = Path(path)
        self._file = open(self.path, "rb")
        try:
            status = os.fstat(self._file.fileno())
            self.manifest, self._start = _parse(self.path, self._file, status.st_size)
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if status.st_size else None
        except BaseException:
            self._file.close()
            raise
        self._verified = None  # the file's status when its checksums were last checked

    @property
    def variables(self) -> List[dict]:
        return self.manifest["variables"]

    def _stat(self):
        status = os.fstat(self._file.fileno())
        return status.st_size, status.st_mtime_ns, status.st_ctime_ns

    def raw(self, index: int) -> memoryview:
        variable = self.variables[index]
        start = self._start + variable["offset"]
        return memoryview(self._map)[start:start + _nbytes(variable["shape"], variable["dtype"])]

    def array(self, index: int) -> np.ndarray:
        """Variable ``index`` (model order) as a read-only view of the mapped file."""
        variable = self.variables[index]
        dtype = numpy_dtype(variable["dtype"])
        return np.frombuffer(self.raw(index), dtype=dtype).reshape(variable["shape"])

    def verify(self) -> "TensorFile":
        """Check every tensor against its checksum (hashing the mapped pages, no copy);
        ``CorruptSnapshot`` naming the first that differs."""
        for index, variable in enumerate(self.variables):
            if xxhash.xxh3_128_hexdigest(self.raw(index)) != variable["xxh3"]:
                raise CorruptSnapshot(f"snapshot file {self.path} does not match its checksum "
                                      f"(variable '{variable['path']}'); it was not loaded")
            self.release(index)
        self._verified = self._stat()
        return self

    def trust(self) -> "TensorFile":
        """Mark the file verified as it is now (one this process has just written)."""
        self._verified = self._stat()
        return self

    def check(self) -> None:
        """Verify again only if the file changed since it was verified: any write to it
        moves its change time, which no tool can set back."""
        if self._verified is None or self._stat() != self._verified:
            self.verify()

    def release(self, index: int) -> None:
        """Drop variable ``index``'s pages from this process's resident memory (they stay
        in the page cache, and come back on the next read)."""
        if self._map is None or not hasattr(mmap, "MADV_DONTNEED"):  # Windows: the OS decides
            return
        variable = self.variables[index]
        start = self._start + variable["offset"]
        end = start + _nbytes(variable["shape"], variable["dtype"])
        first = start - start % mmap.PAGESIZE
        if end > first:
            self._map.madvise(mmap.MADV_DONTNEED, first, end - first)

    def close(self) -> None:
        self._file.close()  # the map stays valid until the last array viewing it is gone

    def __repr__(self) -> str:
        return f"TensorFile({str(self.path)!r}, {len(self.variables)} variables)"
