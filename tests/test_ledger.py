"""Ledger, verdicts, environment, input fingerprints (in-process); the store: test_store.py."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
from filelock import FileLock

from jupyter_repro.run.environment import Environment, collect
from jupyter_repro.run.ledger import Ledger, history_frame
from jupyter_repro.run.verdict import decide

APPENDER = """
import sys
from jupyter_repro.run.ledger import Ledger
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


def test_appends_wait_for_the_ledgers_filelock_across_processes(tmp_path):
    """The lock the appends above go through is filelock's: while another process holds
    it, an append waits (here, with a short timeout, it gives up clearly and writes nothing)."""
    Ledger(tmp_path).append({"input_key": "a", "result": "1"})
    appender = textwrap.dedent("""
        import sys
        import jupyter_repro.run.ledger as ledger
        ledger.LOCK_TIMEOUT = 0.5
        try:
            ledger.Ledger(sys.argv[1]).append({"input_key": "b", "result": "2"})
        except ledger.LedgerLocked as error:
            print(error)
        """)
    with FileLock(tmp_path / "ledger.jsonl.lock"):
        blocked = subprocess.run([sys.executable, "-c", appender, str(tmp_path)],
                                 capture_output=True, text=True, timeout=120)
    assert blocked.returncode == 0, blocked.stderr
    assert "ledger.jsonl has been locked by another process for 0.5 s" in blocked.stdout
    assert len((tmp_path / "ledger.jsonl").read_bytes().splitlines()) == 1
    freed = subprocess.run([sys.executable, "-c", appender, str(tmp_path)], capture_output=True, text=True,
                           timeout=120)
    assert freed.stdout == "" and [r["input_key"] for r in Ledger(tmp_path).records()] == ["a", "b"]


def test_loads_and_records_without_fcntl_or_pread(tmp_path):
    """As on Windows: ``import fcntl`` fails and ``os.pread`` does not exist."""
    code = textwrap.dedent("""
        import os, sys
        sys.modules["fcntl"] = None
        del os.pread
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.extension_manager.load_extension("jupyter_repro")
        from jupyter_repro.run.ledger import Ledger
        ledger = Ledger(sys.argv[1])
        print([ledger.append({"input_key": key})["run"] for key in "ab"], "repro_fit" in shell.magics_manager.magics["cell"])
        """)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "[1, 2] True"


def test_read_only_folder_is_read_without_a_lock(tmp_path, monkeypatch):
    (tmp_path / "ledger.jsonl").write_bytes(b'{"input_key": "a"}\n{"input_key": "b", "res')
    monkeypatch.setattr(os, "access", lambda path, mode: False if mode == os.W_OK else True)
    ledger = Ledger(tmp_path)
    assert [r["input_key"] for r in ledger.records()] == ["a"] and ledger.skipped == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.jsonl"]    # no lock file was made


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


def test_a_kernel_reparses_only_what_changed_and_notices_a_rewrite(tmp_path):
    ledger = Ledger(tmp_path)
    for result in ("r1", "r2", "r3"):
        ledger.append({"input_key": "k", "result": result, "env": {"keras": "3.15.1"}})
    assert [r["result"] for r in ledger.records()] == ["r1", "r2", "r3"]
    raw = ledger.path.read_bytes()
    with open(ledger.path, "r+b") as handle:                  # edited in place: same file, same length
        handle.seek(raw.index(b'"r2"'))
        handle.write(b'"R2"')
    assert [r["result"] for r in ledger.records()] == ["r1", "R2", "r3"]
    Ledger(tmp_path).path.write_bytes(raw[:raw.index(b'"r2"')])  # cut short mid-line
    assert [r["result"] for r in ledger.records()] == ["r1"] and ledger.skipped == 1
    assert ledger.append({"input_key": "k", "result": "r4"})["run"] == 2   # the torn line stays apart
    with open(ledger.path, "ab") as handle:                   # another kernel's line, then ours
        handle.write(json.dumps({"input_key": "k", "result": "other"}).encode() + b"\n")
    assert ledger.append({"input_key": "k", "result": "r5"})["run"] == 4
    assert [r["result"] for r in Ledger(tmp_path).records()] == ["r1", "r4", "other", "r5"]


def test_a_line_that_cannot_be_written_whole_is_cut_off(tmp_path, monkeypatch):
    import errno
    import os

    ledger = Ledger(tmp_path)
    ledger.append({"input_key": "k", "result": "r1"})
    before = ledger.path.read_bytes()
    real = os.write

    def half_then_full(descriptor, data):
        real(descriptor, data[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError, match="No space left on device"):
        ledger.append({"input_key": "k", "result": "r2"})
    monkeypatch.undo()
    assert ledger.path.read_bytes() == before
    assert ledger.append({"input_key": "k", "result": "r3"})["run"] == 2 and ledger.skipped == 0


def test_environment_diff_names_what_changed():
    here = collect()
    assert {"python", "numpy", "keras", "keras backend", "PYTHONHASHSEED", "op determinism"} <= set(here)
    other = Environment(here, numpy="0.0.1")
    assert other.diff(here) == [("numpy", "0.0.1", here["numpy"])]
    assert Environment(keras="3.1 (not imported)").diff({"keras": "3.1"}) == []


def test_environment_names_the_machines_arithmetic(monkeypatch):
    import numpy  # noqa: F401  (NumPy's CPUID probe is what names the instruction sets)

    from jupyter_repro.run import arithmetic
    from jupyter_repro.run.environment import SUMMARY

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    here = collect()
    assert set(arithmetic.FACTS) <= set(here) and set(arithmetic.FACTS) <= set(SUMMARY) and "XLA_FLAGS" in SUMMARY
    assert here["pins"] == "ONEDNN_MAX_CPU_ISA=AVX, OPENBLAS_CORETYPE=Haswell"
    assert "dispatch" in here["numpy simd"] and here["cpu"]
    if "AVX2" in here["cpu isa"].split():               # an x86-64 CPU with AVX2: the cap lowers oneDNN's choice
        assert here["onednn isa"].startswith("AVX (capped; CPU allows ")
    features = {"SSE2": True, "SSE41": True, "AVX": True, "AVX2": True}
    assert arithmetic.onednn_isa(features) == "AVX2"
    assert arithmetic.onednn_isa(features, "avx512_core") == "AVX2"      # a cap above the CPU changes nothing
    assert arithmetic.onednn_isa(features, "SSE41") == "SSE41 (capped; CPU allows AVX2)"
    assert arithmetic.onednn_isa({"ASIMD": True}) == "none (not x86-64)"


def test_a_change_of_arithmetic_is_the_likely_cause_never_not_deterministic(tmp_path):
    ledger = Ledger(tmp_path)
    native = {"keras": "3.15.1", "cpu isa": "AVX AVX2", "onednn isa": "AVX2", "pins": "none"}
    capped = dict(native, **{"onednn isa": "AVX (capped; CPU allows AVX2)", "pins": "ONEDNN_MAX_CPU_ISA=AVX"})
    record(ledger, "r1", native)
    text = str(decide(record(ledger, "r2", capped), ledger.records()))
    assert "not deterministic" not in text
    assert ("result DIFFERS; the machine's arithmetic changed (the likely cause): onednn isa AVX2 → AVX "
            "(capped; CPU allows AVX2); pins none → ONEDNN_MAX_CPU_ISA=AVX") in text
    moved = dict(native, keras="3.16.0")
    assert text_of(ledger, moved).endswith("pins ONEDNN_MAX_CPU_ISA=AVX → none; also changed: keras 3.15.1 → 3.16.0")
    # the twin: the same arithmetic, other bits: the fit itself is not deterministic
    assert text_of(ledger, moved).endswith("environment unchanged, so the fit itself is not deterministic")
    # a run recorded before these facts were collected did not say: not a change
    old = {"keras": "3.16.0"}
    assert Environment(moved).diff(old) == []
    assert Environment(moved, XLA_FLAGS="unset").diff(old) == []     # a summary saved before it carried XLA_FLAGS


def text_of(ledger, env):
    return str(decide(record(ledger, f"r{len(ledger.records()) + 1}", env), ledger.records()))


def test_check_names_a_cpu_change_against_a_saved_summary():
    from jupyter_repro.run.check import difference

    saved = {"input_key": "k", "result": "aaaa", "env": {"keras": "3.15.1", "cpu isa": "AVX AVX2 FMA3", "pins": "none"}}
    here = {"input_key": "k", "result": "bbbb", "env": {"keras": "3.15.1", "cpu isa": "AVX", "pins": "none"}}
    assert difference(saved, here, saved=True) == ("result differs (aaaa vs bbbb) with the same inputs; the machine's "
                                                   "arithmetic changed (the likely cause): cpu isa AVX AVX2 FMA3 → AVX")
    inputs = dict(here, input_key="other", inputs={"fit.y": "1"})
    assert difference(dict(saved, inputs={"fit.y": "2"}), inputs, saved=True).endswith(
        "(the likely cause): cpu isa AVX AVX2 FMA3 → AVX")
    assert difference(saved, dict(here, env=saved["env"]), saved=True).endswith(
        "environment unchanged as far as the summary saved with it tells")


def test_the_blas_fact_is_listed_once_per_import_and_its_threads_read_every_time():
    """The shared objects are walked again only after an import (3.5 ms a fit with TensorFlow
    loaded); the thread count is read live, so ``threadpool_limits`` shows at once."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy  # noqa: F401 -- its OpenBLAS
    from jupyter_repro.run import arithmetic

    before = arithmetic._openblas()
    controller = arithmetic._blas_libraries(threadpoolctl)
    assert arithmetic._blas_libraries(threadpoolctl) is controller       # no import since: not listed again
    if "threads" not in before:
        pytest.skip(f"no BLAS loaded here ({before})")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert ", 1 threads" in arithmetic._openblas()
    assert arithmetic._openblas() == before
    sys.modules["jupyter_repro_test_new_module"] = type(sys)("jupyter_repro_test_new_module")
    try:
        assert arithmetic._blas_libraries(threadpoolctl) is not controller  # an import: listed again
    finally:
        del sys.modules["jupyter_repro_test_new_module"]
