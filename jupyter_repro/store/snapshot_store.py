"""Snapshots and states on disk: one safetensors file each, written atomically, verified when read.

Each is ``<store>/<folder>/NAME-FP.safetensors`` (``store/tensorfile.py``: the format, the
manifest in its metadata, per-tensor XXH3-128 checksums). Files with different content
get different names, so none is ever written over. A file whose bytes do not match its
manifest is refused (``CorruptSnapshot``), never loaded.

Stores written before (``NAME-FP.bin`` with a ``NAME-FP.json`` manifest) are still read:
found, compared by fingerprint, verified and loaded as they were; only new files are
written, in the new format.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
import xxhash

from .tensorfile import SUFFIX, CorruptSnapshot, TensorFile, read_manifest, write

__all__ = ["CorruptSnapshot", "SnapshotStore"]

LEGACY = 1  # the .bin + .json format


class SnapshotStore:
    def __init__(self, directory: os.PathLike, folder: str = "snapshots"):
        self.directory = Path(directory) / folder

    def _stem(self, name: str, fingerprint: str) -> str:
        return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}-{fingerprint[:16]}"

    def save(self, name: str, fingerprint: str, specs, values: Union[Sequence[np.ndarray], Callable[[int], np.ndarray]],
             extra=None, sign=None) -> dict:
        """Write one snapshot (replacing a same-content copy); returns its manifest.

        ``values``: the arrays, or ``values(i)`` giving the i-th when it is written (a view
        of a model's variable: one in memory at a time). ``extra`` (JSON-able) is kept in
        the manifest, e.g. a training History; ``sign`` (``Signer.sign``) adds a signature
        over the manifest, checksums included.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self._stem(name, fingerprint)}{SUFFIX}"
        read = values if callable(values) else values.__getitem__
        manifest = {"name": name, "fingerprint": fingerprint, "created": time.time(), "data": path.name,
                    "extra": extra or {}}
        manifest = write(path, manifest, specs, read, sign)
        manifest["manifest"] = str(path)
        return manifest

    def find(self, name: str, fingerprint: str):
        """The manifest stored for exactly this content, or None; ``CorruptSnapshot`` if
        the file is there but its header cannot be read."""
        stem = self._stem(name, fingerprint)
        path = self.directory / f"{stem}{SUFFIX}"
        try:
            manifest = dict(read_manifest(path), manifest=str(path))
        except OSError:
            manifest = self._read(self.directory / f"{stem}.json")
        return manifest if manifest is not None and manifest.get("fingerprint") == fingerprint else None

    def saved(self, name: str) -> List[dict]:
        """Manifests stored under ``name``, oldest first (unreadable ones are skipped)."""
        return self.lookup(name).manifests

    def lookup(self, name: str, fingerprint: str = "") -> "Saved":
        """What is stored under ``name``, read in one pass over the folder: the manifests,
        and whether the file of exactly this content is there but damaged (its header
        cannot be read: ``saved`` alone would skip it, as if it were not there)."""
        if not self.directory.is_dir():
            return Saved([])
        exact = self.directory / f"{self._stem(name, fingerprint)}{SUFFIX}" if fingerprint else None
        found, damaged = [], None
        for path in self.directory.iterdir():
            if path.suffix not in (SUFFIX, ".json"):
                continue
            if path == exact:
                try:
                    manifest = dict(read_manifest(path), manifest=str(path))
                except CorruptSnapshot as error:
                    damaged = str(error)
                    continue
                except OSError:  # gone meanwhile: as if never there
                    continue
            else:
                manifest = self._read(path)
            if manifest is not None and manifest.get("name") == name:
                found.append(manifest)
        return Saved(sorted(found, key=_created), damaged)

    def files(self) -> List[List[Path]]:
        """Every stored entry as the list of its files (a safetensors file; a legacy
        manifest with its data file), for accounting and eviction."""
        if not self.directory.is_dir():
            return []
        entries = []
        for path in self.directory.iterdir():
            if path.suffix == SUFFIX and not path.name.startswith("."):
                entries.append([path])
            elif path.suffix == ".json":
                entries.append([path, path.with_suffix(".bin")])
        return entries

    def _read(self, path: Path):
        try:
            if path.suffix == SUFFIX:
                manifest = read_manifest(path)
            else:
                manifest = json.loads(path.read_text())
        except (OSError, ValueError, CorruptSnapshot):
            return None
        if not isinstance(manifest, dict):  # JSON, but not a manifest
            return None
        manifest["manifest"] = str(path)
        return manifest

    def open(self, manifest: dict) -> TensorFile:
        """The stored file, mapped and verified against its checksums (nothing copied)."""
        path = Path(manifest["manifest"])
        if manifest.get("format") == LEGACY:
            raise CorruptSnapshot(f"snapshot file {path} is in the format of jupyter-repro 0.1 (.bin + .json); "
                                  "it cannot be mapped: run %repro_snapshot again to store it anew")
        try:
            stored = TensorFile(path)
        except OSError as error:
            raise CorruptSnapshot(f"snapshot file {path} cannot be read ({error.strerror}); it was not loaded") from error
        if stored.manifest.get("fingerprint") != manifest.get("fingerprint"):
            stored.close()
            raise CorruptSnapshot(f"snapshot file {path} holds another snapshot than its name says; it was not loaded")
        try:
            return stored.verify()
        except CorruptSnapshot:
            stored.close()  # not left open (Windows could not replace it with a fresh copy)
            raise

    def load(self, manifest: dict) -> List[np.ndarray]:
        """The stored arrays, verified; ``CorruptSnapshot`` if not. New files give
        read-only views of the mapped file; legacy ones, arrays read into memory."""
        if manifest.get("format") == LEGACY:
            return _load_legacy(self.directory, manifest)
        stored = self.open(manifest)
        return [stored.array(i) for i in range(len(stored.variables))]

    def verify(self, manifest: dict) -> List[str]:
        """Check the stored bytes without copying them; the per-variable checksums."""
        if manifest.get("format") == LEGACY:
            return [None] * len(_load_legacy(self.directory, manifest))
        stored = self.open(manifest)
        stored.close()
        return [variable["xxh3"] for variable in stored.variables]


@dataclass
class Saved:
    """The manifests stored under one name, oldest first, and why the file of the content
    looked up cannot be used, if it is there but damaged."""

    manifests: List[dict]
    damaged: Optional[str] = None

    def same(self, fingerprint: str) -> List[dict]:
        return [m for m in self.manifests if m.get("fingerprint") == fingerprint]


def _created(manifest: dict) -> float:
    created = manifest.get("created")
    return float(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else 0.0


def _load_legacy(directory: Path, manifest: dict) -> List[np.ndarray]:
    """Arrays of a jupyter-repro 0.1 snapshot (``.bin`` + ``.json``), after checking its
    manifest, size and checksum."""
    try:
        return _read_legacy(directory, manifest)
    except (KeyError, TypeError, ValueError, AttributeError) as error:  # a manifest edited or damaged
        raise CorruptSnapshot(f"snapshot manifest {manifest.get('manifest')} is malformed ({type(error).__name__}); "
                              "it was not loaded: run %repro_snapshot again") from None


def _read_legacy(directory: Path, manifest: dict) -> List[np.ndarray]:
    from ..values.tensors import numpy_dtype

    path = directory / manifest["data"]
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CorruptSnapshot(f"snapshot file {path} cannot be read ({error.strerror}); it was not loaded") from error
    if len(raw) != manifest["nbytes"]:
        raise CorruptSnapshot(f"snapshot file {path} is truncated ({len(raw):,} of {manifest['nbytes']:,} bytes); "
                              "it was not loaded")
    if xxhash.xxh3_128_hexdigest(raw) != manifest["checksum"]:
        raise CorruptSnapshot(f"snapshot file {path} does not match its checksum; it was not loaded")
    arrays = []
    for variable in manifest["variables"]:
        dtype, shape = numpy_dtype(variable["dtype"]), tuple(variable["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        arrays.append(np.frombuffer(raw, dtype, count, variable["offset"]).reshape(shape).copy())
    return arrays
