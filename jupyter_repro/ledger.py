"""The run ledger: every reproducible fit, what went in and what came out.

One JSON object per line in ``<store>/ledger.jsonl``. Appends take an exclusive
``flock`` and go out in a single ``write`` on an ``O_APPEND`` descriptor, so two
kernels writing at once interleave whole lines and lose nothing. A line that does not
parse (a crash mid-write on a filesystem without atomic appends) is skipped and
counted, never fatal. Run numbers are positions in the file (1-based).
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import xxhash

FILE = "ledger.jsonl"


def input_key(snapshot: str, seed: int, cell: str, inputs: Dict[str, str]) -> str:
    """What must be equal for two runs to be required to give the same result."""
    key = json.dumps({"snapshot": snapshot, "seed": seed, "cell": cell, "inputs": inputs}, sort_keys=True)
    return xxhash.xxh3_128_hexdigest(key.encode())


class Ledger:
    def __init__(self, directory: os.PathLike):
        self.directory = Path(directory)
        self.path = self.directory / FILE
        self.skipped = 0  # lines that did not parse at the last read

    def append(self, record: dict) -> dict:
        """Append ``record`` (it gets an ``id`` if it has none); returns it with its ``run`` number."""
        record = dict(record)
        record.setdefault("id", os.urandom(8).hex())
        line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode()
        self.directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            size = os.fstat(descriptor).st_size
            if size and os.pread(descriptor, 1, size - 1) != b"\n":
                line = b"\n" + line  # a torn last line stays on its own and is skipped on read
            written = os.write(descriptor, line)
            if written != len(line):
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
        finally:
            os.close(descriptor)  # closing releases the lock
        for stored in reversed(self.records()):
            if stored["id"] == record["id"]:
                return stored
        raise OSError(f"the record just written is not in {self.path}")

    def records(self) -> List[dict]:
        """Every readable record, oldest first, each with its ``run`` number."""
        if not self.path.exists():
            return []
        records, self.skipped = [], 0
        with open(self.path, "rb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            data = handle.read()
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

    def verdict(self, record: dict, records: Optional[List[dict]] = None) -> "Verdict":
        """Compare ``record`` with the latest earlier run that had the same input key."""
        records = self.records() if records is None else records
        before = record.get("run", len(records) + 1)  # a record not appended yet comes after all
        earlier = [r for r in records if r["run"] < before and r.get("input_key") == record["input_key"]]
        if not earlier:
            return Verdict("first", record)
        previous = earlier[-1]
        if previous.get("result") == record.get("result"):
            return Verdict("identical", record, previous)
        from .environment import Environment

        changes = Environment(record.get("env", {})).diff(previous.get("env", {}))
        return Verdict("differs", record, previous, changes)


def _when(record: dict) -> str:
    try:
        moment = _dt.datetime.fromisoformat(record["time"])
    except (KeyError, ValueError):
        return "?"
    same_day = moment.date() == _dt.datetime.now(moment.tzinfo).date()
    return moment.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M")


@dataclass
class Verdict:
    """One line under a fit cell: first run, identical to an earlier one, or different."""

    status: str  # "first" | "identical" | "differs" | "cached"
    record: dict
    earlier: Optional[dict] = None
    env_changes: List[Tuple[str, str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        run = self.record.get("run", "?")
        if self.status == "first":
            return f"run #{run}: first run with these inputs"
        if self.status == "cached":
            return (f"run #{run}: result from run #{self.earlier['run']} ({_when(self.earlier)}), restored "
                    "from the cache; training skipped")
        head = f"run #{run}: same inputs as run #{self.earlier['run']} ({_when(self.earlier)})"
        if self.status == "identical":
            return f"{head} → identical ✓"
        if self.env_changes:
            what = "; ".join(f"{name} {before} → {now}" for name, now, before in self.env_changes)
            return f"⚠ {head} → result DIFFERS; environment changed: {what}"
        return f"⚠ {head} → result DIFFERS; environment unchanged, so the fit itself is not deterministic"


def history_frame(records: List[dict], model: Optional[str] = None, last: Optional[int] = None):
    """The runs as a pandas DataFrame (one row per run, last-epoch metrics as columns)."""
    import pandas as pd

    rows = []
    for record in records:
        if model is not None and record.get("model") != model:
            continue
        row = {"run": record["run"], "time": record.get("time", "")[:19].replace("T", " "),
               "model": record.get("model"), "seed": record.get("seed"),
               "inputs": record.get("input_key", "")[:12], "result": record.get("result", "")[:12],
               "verdict": record.get("verdict", ""), "seconds": record.get("seconds")}
        row.update(record.get("metrics", {}))
        rows.append(row)
    frame = pd.DataFrame(rows)
    if last is not None:
        frame = frame.tail(last)
    return frame.set_index("run") if len(frame) else frame
