"""How much disk a store may take: one cap over its snapshots and cached states together.

``<store>/snapshots/`` and ``<store>/states/`` hold entries (the files of one snapshot or
one state, named by one stem: ``NAME-FP.bin`` + ``NAME-FP.json``, or one file). Together
they stay under ``max_bytes`` (``ReproMagics.cache_max_bytes``):

* an entry is written only through ``DiskQuota.admit``: the least recently used entries
  are deleted first until the new one fits, and one larger than the whole cap is refused
  (``OverCap``, a one-line reason) instead of overshooting it;
* using an entry (a fit restoring its snapshot, a replay of a state) marks it used
  (``touch``: its modification time), so what is in use goes last;
* two kernels may share a store: admissions and evictions hold one lock
  (``<store>/.quota.lock``, ``filelock``), and a file the other kernel removed meanwhile
  is skipped, never an error;
* a write that fails part-way (a full disk, a read-only folder) leaves none of its files
  behind: what appeared in the folder while the lock was held is deleted again.

The ledger and ``environments/`` are small and never evicted.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

from ..errors import ReproError
from ..values.sizes import size_text

DEFAULT_CAP = 2**33  # 8 GiB: a few states of a 1 GB model with Adam's two moments
FOLDERS = ("snapshots", "states")
LOCK = ".quota.lock"
#: a temporary file (".NAME.xxxx") this old was left by a process that died mid-write
STALE_SECONDS = 3600.0


class OverCap(ReproError):
    """An entry larger than the store's whole cap: not written."""


def validate_cap(value) -> int:
    """``value`` as a positive number of bytes, or ``ReproError`` saying what to give."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ReproError(f"cache_max_bytes must be a positive number of bytes, e.g. 2**33 for 8 GiB "
                         f"(got {value!r}); to keep nothing on disk set ReproMagics.store = ''")
    return value


def unwritable(store, error: OSError) -> str:
    """'the store '.repro' cannot be written (Read-only file system: .repro/ledger.jsonl)'."""
    from filelock import Timeout

    if isinstance(error, Timeout):
        return f"the store '{store}' stayed locked by another kernel"
    what = f"{error.strerror}: {error.filename}" if error.strerror and error.filename else str(error)
    return f"the store '{store}' cannot be written ({what})"




@dataclass
class Entry:
    """One stored snapshot or state: its files, their bytes, when it was last used."""

    stem: Path
    files: List[Path] = field(default_factory=list)
    size: int = 0
    used: float = 0.0


def owner_of(signer) -> str:
    """``signer``'s installation tag (``Signer.owner``), or one no state carries where its key
    cannot be read: then every stored state counts as another installation's, none evicted."""
    try:
        return signer.owner
    except OSError:
        return "?"


class DiskQuota:
    def __init__(self, directory: os.PathLike, max_bytes: int, timeout: float = 60.0, keep: Sequence = (),
                 owner: Optional[str] = None):
        self.directory = Path(directory)
        #: this installation's tag (``Signer.owner``): states filed under another's are never evicted
        self.owner = owner
        self.max_bytes = validate_cap(max_bytes)
        self.timeout = timeout  # seconds to wait for another kernel's write
        #: files never evicted by this quota: the snapshots this session restores from
        self.keep = {Path(path) for path in keep}

    def entries(self) -> List[Entry]:
        """Every entry, least recently used first; files removed meanwhile are skipped."""
        found = {}
        for folder in FOLDERS:
            try:
                names = os.listdir(self.directory / folder)
            except FileNotFoundError:
                continue
            for name in names:
                if name.startswith("."):
                    continue  # a write in progress (or one that died: see _sweep)
                path = self.directory / folder / name
                try:
                    stat = path.stat()
                except FileNotFoundError:  # removed by another kernel just now
                    continue
                stem = path.with_name(name.rsplit(".", 1)[0])  # NAME-FP.bin and NAME-FP.json: one entry
                entry = found.setdefault(stem, Entry(stem))
                entry.files.append(path)
                entry.size += stat.st_size
                entry.used = max(entry.used, stat.st_mtime)
        return sorted(found.values(), key=lambda e: e.used)

    def usage(self) -> int:
        return sum(entry.size for entry in self.entries())

    @contextlib.contextmanager
    def admit(self, nbytes: int, what: str = "entry") -> Iterator[None]:
        """Context manager around writing an entry of ``nbytes`` (its data; the files may
        add a manifest): refuses one over the cap, makes room first, holds the lock while
        the caller writes, and removes what the write left if it fails. Raises ``OverCap``,
        or ``OSError`` when the store cannot be written (``filelock.Timeout`` is one:
        another kernel kept the lock)."""
        self._refuse(nbytes, what)
        with self.lock():
            before = self._names()
            self.evict(room=nbytes)
            if self.usage() + nbytes > self.max_bytes:  # what is left is in use, here or (Windows) elsewhere
                raise OverCap(f"{what} was not stored: the store's cap ({size_text(self.max_bytes)}, "
                              "ReproMagics.cache_max_bytes) is taken by snapshots in use and other installations' states")
            try:
                yield
            except BaseException:
                for path in self._names() - before:  # ours: no other writer holds the lock
                    _remove(path)
                raise
            written = self._names() - before
            try:  # with its manifest, the entry may pass the cap after all
                self._refuse(sum(path.stat().st_size for path in written), what)
            except OverCap:
                for path in written:
                    _remove(path)
                raise
            self.evict(keep=written)  # the manifest's bytes were not counted before

    def _refuse(self, nbytes: int, what: str) -> None:
        if nbytes > self.max_bytes:
            raise OverCap(f"{what} was not stored: it takes {size_text(nbytes)}, more than the store's whole "
                          f"cap ({size_text(self.max_bytes)}, ReproMagics.cache_max_bytes)")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        from filelock import FileLock

        self.directory.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.directory / LOCK), timeout=self.timeout):
            yield

    def evict(self, room: int = 0, keep: Sequence[Path] = ()) -> List[str]:
        """Delete least recently used entries until ``room`` more bytes fit under the cap;
        the names deleted. Call with the lock held (``admit`` does)."""
        self._sweep()
        entries = self.entries()
        total = sum(entry.size for entry in entries)
        keep = set(keep) | self.keep
        removed = []
        for entry in entries:
            if total + room <= self.max_bytes:
                break
            if keep.intersection(entry.files) or self._foreign(entry):
                continue
            # the manifest (.json) first: an entry without one is never used
            if all([_remove(path) for path in sorted(entry.files, key=lambda p: p.suffix != ".json")]):
                total -= entry.size
                removed.append(entry.stem.name)
        return removed

    def _foreign(self, entry: Entry) -> bool:
        """A state another installation stored (``state-KEY-OWNER-RESULT``): its to evict."""
        if self.owner is None or entry.stem.parent.name != "states":
            return False
        parts = entry.stem.name.split("-")
        return len(parts) == 4 and parts[0] == "state" and parts[2] != self.owner

    def _names(self) -> set:
        names = set()
        for folder in FOLDERS:
            with contextlib.suppress(FileNotFoundError):
                names.update(self.directory / folder / name for name in os.listdir(self.directory / folder))
        return names

    def _sweep(self) -> None:
        """Remove temporary files of writes that died long ago (a crash mid-write)."""
        limit = time.time() - STALE_SECONDS
        for path in self._names():
            if path.name.startswith(".") and _mtime(path) < limit:
                _remove(path)


def touch(path, marker: bool = False) -> None:
    """Mark a stored entry used now. Only the eviction order depends on it: an entry
    evicted by another kernel meanwhile, or a store that cannot be written, is fine.

    ``marker``: by an empty ``.used`` file beside it (one entry with it: same stem), not by
    the entry's own times. A mapped snapshot is verified once and trusted while its size and
    times stand (``TensorFile.check``); touching it would make every fit hash it again."""
    if path:
        with contextlib.suppress(OSError):
            if marker:
                if Path(path).exists():  # not for an entry evicted meanwhile: the marker would stand alone
                    Path(path).with_suffix(".used").touch()
            else:
                os.utime(path)


def _remove(path: Path) -> bool:
    """Delete ``path``; False if it stays: on Windows a file a kernel has mapped (a large
    snapshot in use) cannot be deleted, and is evicted on a later try."""
    try:
        path.unlink()
    except FileNotFoundError:  # another kernel was first
        pass
    except PermissionError:
        return False
    return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
