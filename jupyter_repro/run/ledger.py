"""The run ledger: every reproducible fit, what went in and what came out.

One JSON object per line in ``<store>/ledger.jsonl``. Appends hold a ``filelock``
lock (``ledger.jsonl.lock``: ``flock`` on Linux and macOS, ``msvcrt`` on Windows) and go
out in a single ``write`` on a binary ``O_APPEND`` descriptor, so two kernels writing at
once interleave whole lines and lose nothing. Reads take the same lock, so they never
see half a line being written. A line that does not parse (a crash mid-write) is
skipped and counted, never fatal; so is one that parses but whose known fields have
the wrong types (a flipped bit, a hand edit), so nothing downstream meets them. Run numbers are positions in the file (1-based). A
line that could not be written whole (a full disk) is cut off again: nothing
half-written stays.

The environment of a run (``run/environment.py``: versions, devices, flags) is the same for
most runs, so it is stored once per distinct environment, in
``<store>/environments/<XXH3-128>.json``, and a line carries its hash (``env_ref``);
reading puts it back as ``env``, so verdicts, signatures, ``history`` and ``check`` see
the record as it was signed. Older lines with the environment inline read as before.

A kernel keeps what it parsed of a ledger: the next read checks that the bytes read
before are unchanged (XXH3 over them) and parses only the lines appended since, so a
fit's cost does not grow with the number of runs recorded. The records returned are
shared between reads: read them, do not change them.
"""
from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional

import xxhash
from filelock import FileLock, Timeout

from ..store.atomic import atomic_file
from ..errors import ReproError

FILE = "ledger.jsonl"
ENVIRONMENTS = "environments"
LOCK_TIMEOUT = 60  # seconds; a writer holds the lock for one write, a reader for one read
#: ``os.open`` is text mode on Windows unless told otherwise ("\n" would become "\r\n").
_BINARY = getattr(os, "O_BINARY", 0)


class LedgerLocked(ReproError):
    """Another process has held the ledger's lock for longer than ``LOCK_TIMEOUT``."""


class Ledger:
    def __init__(self, directory: os.PathLike):
        self.directory = Path(directory)
        self.path = self.directory / FILE
        self.skipped = 0  # lines that did not parse at the last read
        self._lock = FileLock(self.directory / (FILE + ".lock"), timeout=LOCK_TIMEOUT)

    def append(self, record: dict) -> dict:
        """Append ``record`` (it gets an ``id`` if it has none); returns it with its ``run`` number."""
        record = dict(record)
        record.setdefault("id", os.urandom(8).hex())
        self.directory.mkdir(parents=True, exist_ok=True)
        if isinstance(record.get("env"), dict):
            record["env_ref"] = _store_environment(self.directory, record.pop("env"))
        line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode()
        with self._locked():
            descriptor = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _BINARY, 0o644)
            try:
                before = os.fstat(descriptor)
                size = before.st_size
                if size:
                    os.lseek(descriptor, size - 1, os.SEEK_SET)  # O_APPEND writes at the end regardless
                    if os.read(descriptor, 1) != b"\n":
                        line = b"\n" + line  # a torn last line stays on its own and is skipped on read
                try:
                    written = os.write(descriptor, line)
                    if written != len(line):
                        raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
                except OSError:
                    os.ftruncate(descriptor, size)  # no half line stays (the lock is still ours)
                    raise
                stored = _Parsed.appended(self.directory, before, os.fstat(descriptor), line)
            finally:
                os.close(descriptor)
        if stored is not None:
            return stored
        for stored in reversed(self.records()):
            if stored["id"] == record["id"]:
                return stored
        raise OSError(f"the record just written is not in {self.path}")

    def records(self) -> List[dict]:
        """Every readable record, oldest first, each with its ``run`` number."""
        if not self.path.exists():
            return []
        if os.access(self.directory, os.W_OK):
            with self._locked(), open(self.path, "rb") as handle:
                parsed, tail = _Parsed.read(self.directory, handle)
        else:  # a read-only copy: no lock file can be made, nobody appends; a torn line is skipped
            with open(self.path, "rb") as handle:
                parsed, tail = _Parsed.read(self.directory, handle)
        records, self.skipped = parsed.records, parsed.skipped
        if tail:  # a last line without its newline: counted (a record, or skipped), not kept
            records = list(records)
            self.skipped += parsed.parse(tail, records)
        return list(records)

    def _locked(self):
        try:
            return self._lock.acquire()
        except Timeout:
            raise LedgerLocked(f"{self.path} has been locked by another process for {LOCK_TIMEOUT} s "
                               f"(lock file {self._lock.lock_file}); another kernel or command is using it: "
                               "try again when it is done") from None


class _Parsed:
    """What one kernel parsed of one ledger file (by device and inode): the records of its
    first ``offset`` bytes (whole lines), an XXH3 of those bytes, and the file's size and
    times when they were last checked (``seen``)."""

    _files: "OrderedDict[tuple, _Parsed]" = OrderedDict()
    _kept = 8  # ledgers remembered per kernel

    def __init__(self, directory: Path):
        self.directory = directory
        self.buffer = bytearray()  # reused: a fresh 10 MB bytes object costs more than the copy
        self.reset()

    def reset(self) -> None:
        self.offset, self.hasher, self.skipped, self.seen = 0, xxhash.xxh3_64(), 0, None
        self.records: List[dict] = []

    @classmethod
    def _of(cls, directory: Path, stat) -> "_Parsed":
        key = (stat.st_dev, stat.st_ino)
        parsed = cls._files.pop(key, None) or cls(directory)
        cls._files[key] = parsed
        while len(cls._files) > cls._kept:
            cls._files.popitem(last=False)
        return parsed

    @classmethod
    def read(cls, directory: Path, handle) -> tuple:
        """(the parsed state of the open file, its bytes after the last newline), reading
        nothing when the file has not changed since it was last checked, and parsing only
        the lines appended since when the bytes read before are unchanged."""
        stat = os.fstat(handle.fileno())
        parsed = cls._of(directory, stat)
        if parsed.seen == _seen(stat) and parsed.offset == stat.st_size:
            return parsed, b""
        if len(parsed.buffer) < stat.st_size:
            parsed.buffer = bytearray(stat.st_size + (1 << 20))
        with memoryview(parsed.buffer) as view:
            size = handle.readinto(view[:stat.st_size])
            hasher = xxhash.xxh3_64(view[:min(parsed.offset, size)])
            if size < parsed.offset or hasher.digest() != parsed.hasher.digest():
                parsed.reset()  # rewritten, not appended to: read from the start
                hasher = xxhash.xxh3_64()
            end = parsed.buffer.rfind(b"\n", 0, size) + 1
            if end > parsed.offset:
                parsed.skipped += parsed.parse(bytes(view[parsed.offset:end]), parsed.records)
                hasher.update(view[parsed.offset:end])
                parsed.offset, parsed.hasher = end, hasher
            parsed.seen = _seen(stat) if size == stat.st_size else None
            return parsed, bytes(view[end:size])

    @classmethod
    def appended(cls, directory: Path, before, after, line: bytes) -> Optional[dict]:
        """The record of ``line``, just appended by this kernel (the file was ``before``,
        is ``after``), without reading the file: only when nothing else changed it since
        it was last checked; else None."""
        parsed = cls._files.get((before.st_dev, before.st_ino))
        if (parsed is None or parsed.seen != _seen(before) or parsed.offset != before.st_size
                or after.st_size != before.st_size + len(line)):
            return None
        if parsed.parse(line, parsed.records):
            return None  # not reached: the line is ours
        parsed.hasher.update(line)
        parsed.offset, parsed.seen = after.st_size, _seen(after)
        return parsed.records[-1]

    def parse(self, data: bytes, records: List[dict]) -> int:
        """Append the records of ``data``'s lines to ``records``; the lines skipped."""
        skipped = 0
        for raw in data.splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                skipped += 1
                continue
            if not well_formed(record):
                skipped += 1
                continue
            if "env_ref" in record:
                record["env"] = _load_environment(self.directory, record.pop("env_ref"))
            record["run"] = len(records) + 1
            records.append(record)
        return skipped


_NONE = type(None)
_NUMBER = (int, float)
#: the type of each field a ledger line may carry (other fields are kept as they are)
FIELDS = {"id": str, "time": str, "by": str, "model": (str, _NONE), "seed": (int, _NONE), "snapshot": (str, _NONE),
          "snapshot_name": (str, _NONE), "inputs": dict, "input_key": str, "result": (str, _NONE),
          "metrics": dict, "history": dict, "seconds": _NUMBER, "env": dict, "env_ref": str, "opaque": dict,
          "reason": (str, _NONE), "verdict": str, "same_inputs_as": (int, _NONE), "cached_from": int,
          "state": bool, "process": int, "computed_by": dict}
_HASH = re.compile(r"[0-9a-f]{32}")


def well_formed(record) -> bool:
    """Whether a parsed line is a record this package can read: an object whose known
    fields have their types, metrics scalars, each history a list of numbers, the
    environment reference a hash."""
    if not isinstance(record, dict):
        return False
    if any(key in record and not isinstance(record[key], kinds) for key, kinds in FIELDS.items()):
        return False
    if "env_ref" in record and not _HASH.fullmatch(record["env_ref"]):
        return False
    if any(isinstance(value, (dict, list)) for value in record.get("metrics", {}).values()):
        return False
    return all(isinstance(values, list) and all(isinstance(v, _NUMBER) for v in values)
               for values in record.get("history", {}).values())


def _seen(stat) -> tuple:
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


_environments: Dict[str, dict] = {}  # hash -> environment, as read (files never change)


def _environment_json(env: dict) -> bytes:
    return json.dumps(env, sort_keys=True, ensure_ascii=False).encode()


def _store_environment(directory: Path, env: dict) -> str:
    """Write ``env`` once to ``environments/<hash>.json`` (atomically); its hash."""
    data = _environment_json(env)
    key = xxhash.xxh3_128_hexdigest(data)
    path = directory / ENVIRONMENTS / f"{key}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as handle:
            handle.write(data)
    _environments.setdefault(key, json.loads(data))
    return key


def _load_environment(directory: Path, key: str) -> dict:
    """The environment stored under ``key``, verified; ``{}`` (and a record that no longer
    verifies its signature) when the file is gone or altered."""
    if key not in _environments:
        try:
            data = (directory / ENVIRONMENTS / f"{key}.json").read_bytes()
        except OSError:
            return {"environment": f"missing ({ENVIRONMENTS}/{key}.json cannot be read)"}
        try:
            env = json.loads(data) if xxhash.xxh3_128_hexdigest(data) == key else None
        except ValueError:
            env = None
        if not isinstance(env, dict):
            return {"environment": f"altered ({ENVIRONMENTS}/{key}.json does not match its hash)"}
        _environments[key] = env
    return _environments[key]


def history_frame(records: List[dict], model: Optional[str] = None, last: Optional[int] = None):
    """The runs as a pandas DataFrame (one row per run, last-epoch metrics as columns),
    shown in colour by verdict in a notebook (``history.HistoryFrame``)."""
    import pandas as pd

    from .history import REPEATS, HistoryFrame

    if last is not None and last < 1:
        raise ReproError(f"--last takes how many of the latest runs to show, at least 1; got {last}")
    rows = []
    for record in records:
        if model is not None and record.get("model") != model:
            continue
        row = {"run": record["run"], "time": record.get("time", "")[:19].replace("T", " "),
               "model": record.get("model"), "seed": record.get("seed"),
               "inputs": record.get("input_key", "")[:12], "result": record.get("result", "")[:12],
               "verdict": record.get("verdict", ""),
               "repeat of": record.get("same_inputs_as") if record.get("verdict") in REPEATS else None,
               "seconds": record.get("seconds")}
        if record.get("computed_by"):  # replayed from the team store: whose result it is
            row["computed by"] = (record["computed_by"] or {}).get("computed_by")
        row.update(record.get("metrics", {}))
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["repeat of"] = frame["repeat of"].astype("Int64")
    if last is not None:
        frame = frame.tail(last)
    return HistoryFrame(frame.set_index("run") if len(frame) else frame)
