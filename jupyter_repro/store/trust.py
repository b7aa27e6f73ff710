"""Whose results replay: the trust file a team commits beside its notebooks.

``repro-trust.json`` names the public keys (``store/keys.py``) whose signed results may be
replayed instead of training, each with a name the verdicts use::

    {"trusted": {"ci": "ed25519:…", "alice": "ed25519:…"}}

Trust lives in the repository, reviewed like code, and never in the store: whoever can
write the bucket cannot add a key. The file is looked for in the notebook's folder, then
its parents up to the repository's root (the first folder holding ``.git``). This
installation's own key is always trusted (as "this installation"): with no trust file,
only one's own results replay, which is how the per-installation cache always behaved.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Dict, Optional

from ..errors import ReproError
from .atomic import atomic_file
from .keys import parse_public

FILE = "repro-trust.json"
SELF = "this installation"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def find(start: os.PathLike = ".") -> Optional[Path]:
    """The trust file for notebooks in ``start``: there or in a parent, up to the repository's root."""
    folder = Path(start).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / FILE).is_file():
            return candidate / FILE
        if (candidate / ".git").exists():
            return None
    return None


class Trust:
    """The names and public keys whose records replay, and this installation's own."""

    def __init__(self, keys: Dict[str, str], path: Optional[Path] = None, own: Optional[str] = None):
        self.path, self.keys = path, dict(keys)
        self.names = {key: name for name, key in self.keys.items()}
        if own is not None:
            self.names.setdefault(own, SELF)

    @classmethod
    def load(cls, path: Optional[os.PathLike], own: Optional[str] = None) -> "Trust":
        """The trust file at ``path`` (None: none, only ``own`` is trusted); ``ReproError``
        naming the file when it is not one."""
        if path is None:
            return cls({}, None, own)
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls({}, path, own)
        except (OSError, ValueError) as error:
            raise ReproError(f"trust file {path} cannot be read ({error}); fix it or remove it") from error
        keys = data.get("trusted") if isinstance(data, dict) else None
        if not isinstance(keys, dict):
            raise ReproError(f"trust file {path} has no \"trusted\" table of name → public key")
        return cls({_checked_name(name): parse_public(key) for name, key in keys.items()}, path, own)

    def name_of(self, public: str) -> Optional[str]:
        """The name ``public`` is trusted under, or None."""
        return self.names.get(public)

    def add(self, name: str, public: str) -> "Trust":
        """This trust with ``name`` → ``public`` added (replacing that name's key), written
        atomically to its file."""
        if self.path is None:
            raise ReproError("no trust file to write: name one")
        keys = dict(self.keys, **{_checked_name(name): parse_public(public)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.path) as handle:
            handle.write((json.dumps({"trusted": keys}, indent=2, sort_keys=True) + "\n").encode())
        return Trust(keys, self.path)


def _checked_name(name) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ReproError(f"{str(name)[:40]!r} is not a name for a key: letters, digits, '_', '.', '@', '-' "
                         "(e.g. ci, alice)")
    return name
