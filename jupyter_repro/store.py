"""Snapshots on disk: atomic writes, a manifest with a checksum, verified reads.

Each snapshot is two files in ``<store>/snapshots/``: ``NAME-FP.bin`` (every variable's
bytes, concatenated) and ``NAME-FP.json`` (the manifest: variable specs, offsets, byte
count and XXH3-128 checksum). Both are written to a temporary file, flushed to disk
and renamed into place, data first: a manifest never points at a half-written file.
A snapshot whose bytes do not match its manifest is refused, never loaded. Snapshots
with different content get different names, so none is ever written over.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import List

import numpy as np
import xxhash

from .errors import ReproError
from .fingerprint import array_bytes

FORMAT = 1


class CorruptSnapshot(ReproError):
    """A stored snapshot whose bytes do not match its manifest."""


def _atomic_write(path: Path, chunks) -> str:
    """Write ``chunks`` to ``path`` via a temporary file and rename; XXH3-128 of the bytes."""
    digest = xxhash.xxh3_128()
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False)
    try:
        with handle:
            for chunk in chunks:
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        os.unlink(handle.name)
        raise
    return digest.hexdigest()


class SnapshotStore:
    def __init__(self, directory: os.PathLike, folder: str = "snapshots"):
        self.directory = Path(directory) / folder

    def _stem(self, name: str, fingerprint: str) -> str:
        return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}-{fingerprint[:16]}"

    def save(self, name: str, fingerprint: str, specs, values: List[np.ndarray], extra=None,
             sign=None) -> dict:
        """Write one snapshot (replacing a same-content copy); returns its manifest.

        ``extra`` (JSON-able) is kept in the manifest, e.g. a training History; ``sign``
        (``Signer.sign``) adds a signature over the manifest, checksum included.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = self._stem(name, fingerprint)
        data = self.directory / f"{stem}.bin"
        checksum = _atomic_write(data, (array_bytes(v) for v in values))
        offsets = np.cumsum([0] + [v.nbytes for v in values]).tolist()
        manifest = {"format": FORMAT, "name": name, "fingerprint": fingerprint, "created": time.time(),
                    "data": data.name, "nbytes": offsets[-1], "checksum": checksum,
                    "variables": [{"path": p, "shape": list(s), "dtype": d, "offset": o}
                                  for (p, s, d), o in zip(specs, offsets)], "extra": extra or {}}
        if sign is not None:
            manifest = sign(manifest)
        _atomic_write(self.directory / f"{stem}.json", [json.dumps(manifest, indent=1).encode()])
        manifest["manifest"] = str(self.directory / f"{stem}.json")
        return manifest

    def find(self, name: str, fingerprint: str):
        """The manifest stored for exactly this content, or None."""
        path = self.directory / f"{self._stem(name, fingerprint)}.json"
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        manifest["manifest"] = str(path)
        return manifest if manifest.get("fingerprint") == fingerprint else None

    def saved(self, name: str) -> List[dict]:
        """Manifests stored under ``name``, oldest first (unreadable ones are skipped)."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.glob("*.json"):
            try:
                manifest = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(manifest, dict) and manifest.get("name") == name:
                manifest["manifest"] = str(path)
                found.append(manifest)
        return sorted(found, key=lambda m: m.get("created", 0))

    def load(self, manifest: dict) -> List[np.ndarray]:
        """The stored arrays, after checking size and checksum; ``CorruptSnapshot`` if not."""
        path = self.directory / manifest["data"]
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
            dtype, shape = np.dtype(variable["dtype"]), tuple(variable["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            arrays.append(np.frombuffer(raw, dtype, count, variable["offset"]).reshape(shape).copy())
        return arrays
