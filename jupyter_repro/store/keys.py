"""Who computed a result: an ed25519 key pair per installation (or CI job), made on first use.

``signing.py``'s HMAC key says "this installation computed it" and no one else can check
it. A team store needs the opposite: a signature anyone can verify and only its owner can
make, so a state in a shared bucket is trusted for who signed it, never for where it was
found (Nix's ``trusted-public-keys``). The key lives beside the HMAC key, in the Jupyter
data directory (``jupyter --data-dir``), mode 0600; ``$JUPYTER_REPRO_KEY_FILE`` points a
CI job at the key it keeps as a secret. Public keys are written ``ed25519:BASE64`` (the 32
raw bytes), short enough for a trust file and a review. The cryptography is the
``cryptography`` package's (``pip install jupyter-repro[team]``), not ours.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Optional

from ..errors import ReproError

PREFIX = "ed25519:"
#: the environment variable naming a key file (a CI secret written to disk)
KEY_FILE_VARIABLE = "JUPYTER_REPRO_KEY_FILE"
_BINARY = getattr(os, "O_BINARY", 0)


def require_cryptography():
    """The ``cryptography`` package's ed25519 module, or a one-line ``ReproError`` saying what to install."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as error:
        raise ReproError("a team store signs and verifies with the 'cryptography' package, which is not "
                         "installed: pip install 'jupyter-repro[team]'") from error
    return ed25519


def default_key_file() -> Path:
    named = os.environ.get(KEY_FILE_VARIABLE)
    if named:
        return Path(named)
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "jupyter_repro" / "ed25519.key"


def payload(record: dict) -> bytes:
    """The bytes a record's signature covers: every field but the signature, canonical JSON."""
    return json.dumps({k: v for k, v in record.items() if k != "signature"}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":")).encode()


def key_id(public: str) -> str:
    """A short, stable tag of a public key (names files; shown where no name is known)."""
    return hashlib.sha256(public.encode()).hexdigest()[:16]


class Identity:
    """This installation's key pair: signs records; ``public`` is what others trust."""

    def __init__(self, key_file: Optional[os.PathLike] = None):
        self.key_file = Path(key_file) if key_file else default_key_file()
        self._private = None

    @property
    def private(self):
        if self._private is None:
            ed25519 = require_cryptography()
            self._private = ed25519.Ed25519PrivateKey.from_private_bytes(self._read_or_create())
        return self._private

    def _read_or_create(self) -> bytes:
        try:
            raw = self.key_file.read_bytes()
        except FileNotFoundError:
            return self._create()
        if len(raw) != 32:  # a key exported as text (a CI secret): base64 of the 32 bytes
            try:
                raw = base64.b64decode(raw.strip(), validate=True)
            except ValueError:
                raw = b""
        if len(raw) != 32:
            raise ReproError(f"key file {self.key_file} does not hold an ed25519 key (32 bytes, or their base64 "
                             "as `jupyter-repro key export` writes it); delete it to make a new one")
        return raw

    def _create(self) -> bytes:
        """A new key, written whole (a temporary file, then linked: ``link`` fails if another
        kernel made one first, as ``O_EXCL`` does, and no reader sees half a key)."""
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        raw = os.urandom(32)
        temporary = self.key_file.with_name(f".{self.key_file.name}.{os.getpid()}.{os.urandom(4).hex()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, self.key_file)
        except FileExistsError:  # two kernels starting at once agree on the first one's key
            return self._read_or_create()
        finally:
            os.unlink(temporary)
        return raw

    @property
    def public(self) -> str:
        """``ed25519:BASE64`` of the public key."""
        from cryptography.hazmat.primitives import serialization

        raw = self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return PREFIX + base64.b64encode(raw).decode()

    def export(self) -> str:
        """The private key as base64 text, to keep as a CI secret (written to the file that
        ``$JUPYTER_REPRO_KEY_FILE`` names)."""
        self.private  # made if there is none yet
        return base64.b64encode(self._read_or_create()).decode()

    def sign(self, record: dict) -> dict:
        """``record`` with ``signer`` (the public key) and ``signature`` over all of it."""
        signed = dict(record, signer=self.public)
        signature = self.private.sign(payload(signed))
        return dict(signed, signature=base64.b64encode(signature).decode())


def verifies(record: dict) -> bool:
    """True only for a record whose ``signature`` its ``signer`` made over exactly these fields."""
    ed25519 = require_cryptography()
    from cryptography.exceptions import InvalidSignature

    signer, signature = record.get("signer"), record.get("signature")
    if not (isinstance(signer, str) and signer.startswith(PREFIX) and isinstance(signature, str)):
        return False
    try:
        public = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(signer[len(PREFIX):], validate=True))
        public.verify(base64.b64decode(signature, validate=True), payload(record))
    except (InvalidSignature, ValueError):
        return False
    return True


def parse_public(text: str) -> str:
    """``text`` as a public key in its canonical form; ``ReproError`` for anything else."""
    ed25519 = require_cryptography()
    text = str(text).strip()
    body = text[len(PREFIX):] if text.startswith(PREFIX) else text
    try:
        raw = base64.b64decode(body, validate=True)
        ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ReproError(f"{text[:60]!r} is not an ed25519 public key; give one as `jupyter-repro key show` "
                         "prints it (ed25519:BASE64)")
    return PREFIX + base64.b64encode(raw).decode()
