"""A team's store: content-addressed blobs and small signed records at any fsspec URL.

The layout is a build cache's (Bazel's content-addressable store and action cache, DVC's
run-cache), under the URL's prefix::

    blobs/sha256/ab/abcdef…          a stored state file, named by the SHA-256 of its bytes
    records/KEY/CLASS-DIGEST.json    inputs' key, environment class → result, blobs, signer

Nothing is ever overwritten or deleted: every write is create-only (an S3 conditional put,
``IfNoneMatch: *``; ``O_EXCL``/``link`` on a drive), so a blob, once there, is the bytes
its name says, and a record, once there, is the record its name says (it is named by the
SHA-256 of its own bytes). Many writers of one key each leave their own record, whole;
the same blob written twice is the same bytes, and the second write finds it there.
SHA-256, not XXH3: a record signs a digest, which must be one an attacker cannot match
with other bytes.

Every call is bounded by ``timeout`` seconds (plus the time to move a blob at 5 MB/s): an
unreachable store costs a fit that long once, then ``down`` says why and later calls fail
at once. Reading never trusts: ``get_blob`` re-hashes; records are verified by
``run/sharing.py``. The filesystem comes from fsspec and its backends
(``jupyter-repro[s3]``, ``[gcs]``); none is imported until a team store is used.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import tempfile
from typing import Callable, List, Optional, Tuple

from ..errors import ReproError

#: what to install for each protocol fsspec needs a package for
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "az": "azure", "sftp": "sftp"}
_RATE = 5 * 2**20  # bytes a second a blob is given at least, on top of the timeout


class CorruptBlob(ReproError):
    """A blob whose bytes are not those its digest names."""


class StoreDown(OSError):
    """The team store did not answer in time, or cannot be reached: nothing more is asked of it."""


def is_url(value) -> bool:
    """True for a team store's address (``s3://…``, ``file:///mnt/team/…``), not a local folder."""
    return isinstance(value, str) and "://" in value


def check(url: str) -> None:
    """Refuse, in one line, a team store address that cannot be used here: not a URL, or
    its packages (fsspec, the backend, cryptography) not installed. Nothing is contacted."""
    from .keys import require_cryptography

    if not is_url(url):
        raise ReproError(f"team store {str(url)[:80]!r} is not a URL: give s3://bucket/prefix, gs://…, or "
                         "file:///path/on/a/shared/drive")
    _filesystem(url, 2.0, {})
    require_cryptography()


def digest_of(data) -> str:
    return hashlib.sha256(data).hexdigest()


class TeamStore:
    """Blobs and records under ``url``, through fsspec."""

    def __init__(self, url: str, timeout: float = 2.0, options: Optional[dict] = None):
        self.url, self.timeout = str(url), float(timeout)
        self.fs, self.root = _filesystem(self.url, self.timeout, options or {})
        self.down: Optional[str] = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="repro-team-store")
        self._pool.submit(self._warm)  # an S3 client loads its service model (~0.5 s): not in a fit's time

    def _warm(self) -> None:
        """Make the backend's client now, in the background (an async fsspec backend's session)."""
        set_session = getattr(self.fs, "set_session", None)
        if set_session is not None and getattr(self.fs, "loop", None) is not None:
            from fsspec.asyn import sync

            try:
                sync(self.fs.loop, set_session)
            except Exception as error:  # no credentials, a bad endpoint: said by the first real call
                if not isinstance(error, OSError) and not _from_backend(error):
                    raise

    def __repr__(self) -> str:
        return f"TeamStore({self.url!r})"

    def _bounded(self, call: Callable, *args, seconds: float = 0.0):
        """``call(*args)`` within the timeout; ``StoreDown`` once it did not answer."""
        if self.down is not None:
            raise StoreDown(self.down)
        future = self._pool.submit(call, *args)
        try:
            return future.result(self.timeout + seconds)
        except concurrent.futures.TimeoutError:
            self.down = f"{self.url} did not answer within {self.timeout + seconds:.1f} s"
        except (FileNotFoundError, FileExistsError, PermissionError):
            raise
        except Exception as error:  # refused, unknown host, no credentials: down for this session
            if not isinstance(error, OSError) and not _from_backend(error):
                raise  # a mistake of ours, not the store's
            self.down = f"{self.url} cannot be reached ({_first_line(error)})"
        raise StoreDown(self.down)

    def _path(self, *parts: str) -> str:
        return "/".join((self.root.rstrip("/"),) + parts)

    def blob_path(self, digest: str) -> str:
        return self._path("blobs", "sha256", digest[:2], digest)

    def put_blob(self, data: bytes) -> Tuple[str, bool]:
        """Store ``data`` under its digest; (digest, True if written now, False if it was there)."""
        digest = digest_of(data)
        try:
            self._bounded(self._create, self.blob_path(digest), data, seconds=len(data) / _RATE)
        except FileExistsError:
            return digest, False
        return digest, True

    def get_blob(self, digest: str, size: int = 0) -> bytes:
        """The bytes named ``digest``, re-hashed (``CorruptBlob`` if they are others);
        ``FileNotFoundError`` when there is none."""
        data = self._bounded(self.fs.cat_file, self.blob_path(digest), seconds=size / _RATE)
        if digest_of(data) != digest:
            raise CorruptBlob(f"blob {digest[:12]} holds other bytes than its digest names (tampered or damaged)")
        return data

    def put_record(self, record: dict, prefix: str) -> str:
        """Write ``record`` (signed already) as ``records/KEY/PREFIX-DIGEST.json``, create-only; its name."""
        data = json.dumps(record, sort_keys=True, ensure_ascii=False).encode()
        name = f"{prefix}-{digest_of(data)[:32]}.json"
        try:
            self._bounded(self._create, self._path("records", record["input_key"][:32], name), data)
        except FileExistsError:  # the same bytes, written before
            pass
        return name

    def records(self, key: str) -> List[Tuple[str, bytes]]:
        """(name, bytes) of every record stored for input key ``key``."""
        return self._bounded(self._records, self._path("records", key[:32]))

    def _records(self, folder: str) -> List[Tuple[str, bytes]]:
        self.fs.invalidate_cache(folder)  # s3fs caches listings: another writer's records would not show
        try:
            paths = sorted(p for p in self.fs.ls(folder, detail=False) if p.endswith(".json"))
        except FileNotFoundError:
            return []
        found = []
        for path in paths:
            try:
                found.append((path.rsplit("/", 1)[-1], self.fs.cat_file(path)))
            except FileNotFoundError:
                continue
        return found

    def _create(self, path: str, data: bytes) -> None:
        """Write ``path`` only if nothing is there (``FileExistsError`` otherwise), whole or not at all."""
        if _is_local(self.fs):
            return _create_local(self.fs._strip_protocol(path), data)
        try:
            self.fs.pipe_file(path, data, mode="create")
        except (TypeError, NotImplementedError) as error:  # never a write that could replace another's
            raise PermissionError(f"{type(self.fs).__name__} has no create-only write (fsspec's mode='create'), "
                                  "so nothing is shared through it; results are still read from it") from error


#: packages whose own exceptions mean "the store did not answer" (botocore's EndpointConnectionError
#: is not an OSError, nor are google-auth's or azure's)
_BACKENDS = ("botocore", "aiobotocore", "aiohttp", "urllib3", "requests", "google", "gcsfs", "azure", "adlfs",
             "paramiko", "sshfs", "asyncssh", "s3fs", "fsspec")


def _from_backend(error: BaseException) -> bool:
    return any(cls.__module__.split(".")[0] in _BACKENDS for cls in type(error).__mro__)


def _is_local(fs) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,))


def _create_local(path: str, data: bytes) -> None:
    """Create-only and atomic on a drive: written to a temporary file, then hard-linked to
    ``path`` (``link`` fails if ``path`` exists, as ``O_EXCL`` does), so a reader never
    sees half a file and no writer replaces another's."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{os.path.basename(path)}.", delete=False)
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(handle.name, path)
    finally:
        os.unlink(handle.name)


def _filesystem(url: str, timeout: float, options: dict):
    """(fsspec filesystem, root path) for ``url``; ``ReproError`` saying what to install."""
    protocol = url.split("://", 1)[0]
    extra = EXTRAS.get(protocol, "team")
    try:
        import fsspec.core
    except ImportError as error:
        raise ReproError(f"a team store at {url} needs fsspec: pip install 'jupyter-repro[{extra}]'") from error
    if protocol in ("s3", "s3a"):  # bounded: s3fs's one retry only (botocore's legacy retries slept 0.6 s
        # on a refused connection), no minute-long connect; an instance of our own
        config = {"connect_timeout": timeout, "read_timeout": max(timeout, 60), "retries": {"total_max_attempts": 1}}
        options = dict(options, config_kwargs={**config, **options.get("config_kwargs", {})},
                       skip_instance_cache=True)
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except ImportError as error:
        raise ReproError(f"a team store at {url} needs {protocol}'s fsspec backend: "
                         f"pip install 'jupyter-repro[{extra}]'") from error
    except (ValueError, TypeError) as error:
        raise ReproError(f"team store {url!r} is not a URL fsspec can open ({_first_line(error)})") from error
    if protocol in ("s3", "s3a"):
        fs.retries = 2  # s3fs tries a refused connection 5 times, backing off up to 1 s, by default
    return fs, root


def _first_line(error) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
