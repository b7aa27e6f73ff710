"""The run ledger: every reproducible fit, what went in and what came out.

One JSON object per line in ``<store>/ledger.jsonl``. Appends hold a ``filelock``
lock (``ledger.jsonl.lock``: ``flock`` on Linux and macOS, ``msvcrt`` on Windows) and go
out in a single ``write`` on a binary ``O_APPEND`` descriptor, so two kernels writing at
once interleave whole lines and lose nothing. Reads take the same lock, so they never
see half a line being written. A line that does not parse (a crash mid-write) is
skipped and counted, never fatal. Run numbers are positions in the file (1-based).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional

from filelock import FileLock, Timeout

from .errors import ReproError

FILE = "ledger.jsonl"
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
        line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode()
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._locked():
            descriptor = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _BINARY, 0o644)
            try:
                size = os.fstat(descriptor).st_size
                if size:
                    os.lseek(descriptor, size - 1, os.SEEK_SET)  # O_APPEND writes at the end regardless
                    if os.read(descriptor, 1) != b"\n":
                        line = b"\n" + line  # a torn last line stays on its own and is skipped on read
                written = os.write(descriptor, line)
                if written != len(line):
                    raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            finally:
                os.close(descriptor)
        for stored in reversed(self.records()):
            if stored["id"] == record["id"]:
                return stored
        raise OSError(f"the record just written is not in {self.path}")

    def records(self) -> List[dict]:
        """Every readable record, oldest first, each with its ``run`` number."""
        if not self.path.exists():
            return []
        records, self.skipped = [], 0
        if os.access(self.directory, os.W_OK):
            with self._locked():
                data = self.path.read_bytes()
        else:  # a read-only copy: no lock file can be made, nobody appends; a torn line is skipped below
            data = self.path.read_bytes()
        for raw in data.splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                self.skipped += 1
                continue
            if isinstance(record, dict):
                record["run"] = len(records) + 1
                records.append(record)
        return records

    def _locked(self):
        try:
            return self._lock.acquire()
        except Timeout:
            raise LedgerLocked(f"{self.path} has been locked by another process for {LOCK_TIMEOUT} s "
                               f"(lock file {self._lock.lock_file}); another kernel or command is using it: "
                               "try again when it is done") from None


def history_frame(records: List[dict], model: Optional[str] = None, last: Optional[int] = None):
    """The runs as a pandas DataFrame (one row per run, last-epoch metrics as columns),
    shown in colour by verdict in a notebook (``history.HistoryFrame``)."""
    import pandas as pd

    from .history import REPEATS, HistoryFrame

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
        row.update(record.get("metrics", {}))
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["repeat of"] = frame["repeat of"].astype("Int64")
    if last is not None:
        frame = frame.tail(last)
    return HistoryFrame(frame.set_index("run") if len(frame) else frame)
