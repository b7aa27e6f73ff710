"""Files that appear whole or not at all.

A write goes to a temporary file beside the target (``.NAME.xxxx``: ``store/quota.py`` never
counts such names and sweeps ones a crash left), is fsync'd, then renamed over the
target; if anything fails, the temporary file is removed. A reader never sees half a
file, and a full disk leaves nothing behind.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


@contextlib.contextmanager
def atomic_file(path: os.PathLike) -> Iterator[BinaryIO]:
    """Context manager giving a binary handle whose bytes become ``path`` on a clean exit."""
    path = Path(path)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        os.unlink(handle.name)
        raise
