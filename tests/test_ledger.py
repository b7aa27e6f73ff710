"""Ledger, verdicts, environment, input fingerprints (in-process); the store: test_store.py."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from jupyter_repro.environment import Environment, collect
from jupyter_repro.ledger import Ledger, history_frame
from jupyter_repro.verdict import decide

APPENDER = """
import sys
from jupyter_repro.ledger import Ledger
ledger = Ledger(sys.argv[1])
for i in range(1000):
    ledger.append({"writer": sys.argv[2], "i": i, "input_key": "k", "result": "r" * 64})
"""


def test_two_processes_appending_at_once_lose_nothing(tmp_path):
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, str(tmp_path), name]) for name in "ab"]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    lines = (tmp_path / "ledger.jsonl").read_bytes().splitlines()
    records = [json.loads(line) for line in lines]          # every line is whole JSON
    assert len(records) == 2000
    for name in "ab":
        assert [r["i"] for r in records if r["writer"] == name] == list(range(1000))
    assert len({r["id"] for r in records}) == 2000


def test_unreadable_line_is_skipped_and_counted(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.append({"input_key": "a", "result": "1"})
    with open(ledger.path, "ab") as handle:
        handle.write(b'{"input_key": "b", "res')          # a torn write
    second = ledger.append({"input_key": "a", "result": "1"})
    assert [r["run"] for r in ledger.records()] == [1, 2] and ledger.skipped == 1
    assert second["run"] == 2


def record(ledger, result, env=None):
    return ledger.append({"input_key": "same", "result": result, "time": "2026-11-20T12:04:00+00:00",
                          "env": env or {"keras": "3.15.1"}})


def test_verdicts(tmp_path):
    ledger = Ledger(tmp_path)

    def verdict(record):
        return decide(record, ledger.records())

    first = record(ledger, "r1")
    assert verdict(first).status == "first"
    same = record(ledger, "r1")
    assert str(verdict(same)) == "run #2: same inputs as run #1 (2026-11-20 12:04) → identical ✓"
    differs = record(ledger, "r2", {"keras": "3.16.0"})
    text = str(verdict(differs))
    assert text.startswith("⚠ run #3: same inputs as run #2") and "keras 3.15.1 → 3.16.0" in text
    unexplained = record(ledger, "r3", {"keras": "3.16.0"})
    assert "environment unchanged, so the fit itself is not deterministic" in str(verdict(unexplained))
    opaque = ledger.append({"input_key": "same", "result": "r9", "opaque": {"fit.x": "fit.x is a generator"},
                            "reason": "fit.x is a generator"})
    assert str(verdict(opaque)) == "run #5: not compared: fit.x is a generator"   # never "DIFFERS"
    later = record(ledger, "r3", {"keras": "3.16.0"})
    assert verdict(later).earlier["run"] == 4          # an opaque run is never the earlier one


def test_history_frame_filters(tmp_path):
    ledger = Ledger(tmp_path)
    for model in ("a", "b", "a"):
        ledger.append({"model": model, "input_key": "k", "result": "r", "metrics": {"loss": 1.5}})
    frame = history_frame(ledger.records(), model="a", last=1)
    assert list(frame.index) == [3] and frame.loc[3, "loss"] == 1.5


def test_environment_diff_names_what_changed():
    here = collect()
    assert {"python", "numpy", "keras", "keras backend", "PYTHONHASHSEED", "op determinism"} <= set(here)
    other = Environment(here, numpy="0.0.1")
    assert other.diff(here) == [("numpy", "0.0.1", here["numpy"])]
    assert Environment(keras="3.1 (not imported)").diff({"keras": "3.1"}) == []
