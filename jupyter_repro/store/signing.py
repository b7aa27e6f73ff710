"""Signatures that say "this installation computed it".

The cache replays a stored state instead of training, so it must only replay what this
installation trained: a ``.repro/`` folder committed to a repository, copied from a
colleague or edited by hand could otherwise hand a user a model they never trained,
with checksums that match. Every ledger line and every stored state's manifest is signed
with HMAC-SHA256 under a key kept outside the project, in the user's Jupyter data
directory (``jupyter --data-dir``, ``$JUPYTER_DATA_DIR``); the cache replays only what
verifies. Verdicts still compare with unsigned lines, and say they came from elsewhere.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Optional

FIELD = "signature"
#: fields added on reading, not part of what was signed
_UNSIGNED = (FIELD, "run", "manifest")
#: ``os.open`` is text mode on Windows unless told otherwise: the key would gain "\r" bytes.
_BINARY = getattr(os, "O_BINARY", 0)


def default_key_file() -> Path:
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "jupyter_repro" / "signing.key"


class Signer:
    """Signs and verifies JSON records with this installation's key (made on first use)."""

    def __init__(self, key_file: Optional[os.PathLike] = None):
        self.key_file = Path(key_file) if key_file else default_key_file()
        self._key: Optional[bytes] = None

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = self._read_or_create()
        return self._key

    def _read_or_create(self) -> bytes:
        try:
            key = self.key_file.read_bytes()
        except FileNotFoundError:
            self.key_file.parent.mkdir(parents=True, exist_ok=True)
            try:  # O_EXCL: two kernels starting at once agree on one key
                descriptor = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY, 0o600)
            except FileExistsError:
                return self._read_or_create()
            key = secrets.token_bytes(32)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(key)
                handle.flush()
                os.fsync(handle.fileno())
            return key
        if len(key) < 32:  # a key being written by another kernel right now, or a damaged one
            raise OSError(f"signing key {self.key_file} is incomplete ({len(key)} bytes); delete it "
                          "to make a new one (earlier cached states will then be trained anew)")
        return key

    @property
    def owner(self) -> str:
        """A public tag of this installation (derived from its key, revealing nothing of it):
        the cache files its states under it, so another installation's never replace them."""
        return hmac.new(self.key, b"jupyter-repro installation", hashlib.sha256).hexdigest()[:12]

    def signature(self, record: dict) -> str:
        payload = json.dumps({k: v for k, v in record.items() if k not in _UNSIGNED},
                             sort_keys=True, ensure_ascii=False).encode()
        return hmac.new(self.key, payload, hashlib.sha256).hexdigest()

    def sign(self, record: dict) -> dict:
        """``record`` with its signature."""
        return dict(record, **{FIELD: self.signature(record)})

    def verifies(self, record: dict) -> bool:
        """True only for a record this installation signed, unchanged since."""
        signature = record.get(FIELD)
        return isinstance(signature, str) and hmac.compare_digest(signature, self.signature(record))
