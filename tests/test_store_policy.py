"""The store's limits (in-process; the notebook workflow in a real kernel is
tests/test_kernel_store.py): one validated cap over snapshots and cached states, least
recently used first; a store that cannot be written, or whose writes fail part-way,
never costs the fit; the environment stored once; two processes sharing a store while
one evicts."""
import errno
import json
import os
import subprocess
import sys

import pytest
from traitlets import TraitError

from jupyter_repro import ReproError, Session
from jupyter_repro.run.ledger import Ledger
from jupyter_repro.store.quota import DiskQuota
from store_folders import files_under, read_only_folder, stored_files  # noqa: F401 -- a fixture

MODEL = '''
import numpy as np, keras
rng = np.random.default_rng(0)
X = rng.normal(size=(64, 64)).astype("float32"); y = X.sum(1)
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
'''  # 16,897 float32 values: 67 KB a snapshot, about three times that a state with Adam's moments
FIT = "%%repro_fit model {options}\nhistory = model.fit(X, y, epochs=2, batch_size=16, verbose=0)"
MODEL_BYTES = 16_897 * 4


@pytest.fixture
def shell(ip):
    ip.run_cell("%repro_seed 42")
    ip.run_cell(MODEL)
    ip.run_cell("%repro_snapshot model")
    return ip


def magics(ip):
    return ip.magics_manager.registry["ReproMagics"]


def fit(ip, options=""):
    return ip.run_cell(FIT.format(options=options)).result


def warnings(report):
    return [note for note in report.notes if note.startswith("⚠")]


def trained_state(ip, report):
    """The model holds the result the report names, and not the snapshot's state."""
    from jupyter_repro import model_fingerprint

    current = model_fingerprint(ip.user_ns["model"])
    return current == report.fingerprint and current != report.snapshot_fingerprint


# -- the cap ------------------------------------------------------------------------
@pytest.mark.parametrize("value", [-5, 0])
def test_cap_must_be_a_positive_number_of_bytes(shell, value):
    before = magics(shell).cache_max_bytes
    with pytest.raises(TraitError, match="cache_max_bytes must be a positive number of bytes"):
        magics(shell).cache_max_bytes = value
    shell.run_line_magic("config", f"ReproMagics.cache_max_bytes = {value}")  # IPython prints the error
    assert magics(shell).cache_max_bytes == magics(shell).session.cache_max_bytes == before
    with pytest.raises(ReproError, match="cache_max_bytes must be a positive number of bytes"):
        Session(store=None, cache_max_bytes=value)


def test_cache_refuses_a_state_over_the_cap(shell):
    store = magics(shell).store
    magics(shell).cache_max_bytes = cap = 2 * MODEL_BYTES  # the snapshot fits; a state with Adam's moments not
    report = fit(shell, "--cache")
    assert "cache: the result's state was not stored: it takes 198.0 KiB, more than the store's whole cap " \
           "(132.0 KiB, ReproMagics.cache_max_bytes)" in report.notes
    assert report.run == 1 and trained_state(shell, report)            # recorded, and the fit kept
    assert not files_under(os.path.join(store, "states"))              # nothing of it stored
    assert 0 < DiskQuota(store, cap).usage() <= cap                    # the snapshot is
    again = fit(shell, "--cache")
    assert again.verdict.status == "identical"                         # trained again: nothing to replay


def test_snapshots_and_states_share_one_cap_least_recently_used_first(shell):
    store = magics(shell).store
    first = fit(shell, "--cache --seed 1")
    state = sum(os.path.getsize(p) for p in files_under(os.path.join(store, "states")))
    snapshots = files_under(os.path.join(store, "snapshots"))
    snapshot = sum(os.path.getsize(p) for p in snapshots)
    magics(shell).cache_max_bytes = cap = snapshot + state * 3 // 2
    fit(shell, "--cache --seed 2")                                     # needs room: evicts seed 1's state
    assert DiskQuota(store, cap).usage() <= cap
    assert files_under(os.path.join(store, "snapshots")) == snapshots  # used by every fit: kept
    assert fit(shell, "--cache --seed 2").verdict.status == "cached"
    again = fit(shell, "--cache --seed 1")
    assert again.verdict.status == "identical" and again.fingerprint == first.fingerprint
    assert DiskQuota(store, cap).usage() <= cap


def test_the_snapshot_in_use_is_not_evicted_to_make_room_for_a_state(shell):
    store = magics(shell).store
    snapshots = files_under(os.path.join(store, "snapshots"))
    snapshot = sum(os.path.getsize(p) for p in snapshots)
    magics(shell).cache_max_bytes = snapshot + MODEL_BYTES * 2   # a state (3x the model) fits only without it
    report = fit(shell, "--cache")
    assert [note for note in report.notes if note.startswith("cache: the result's state was not stored: the store's "
            "cap (") and note.endswith(", ReproMagics.cache_max_bytes) is taken by snapshots in use and other installations' states")]
    assert stored_files(os.path.join(store, "snapshots")) == snapshots and not files_under(os.path.join(store, "states"))
    assert fit(shell).verdict.status == "identical"                    # restored from the kept snapshot


# -- a store that cannot be written -------------------------------------------------
def unwritable_fit(shell, options=""):
    report = fit(shell, options)
    assert len(warnings(report)) == 1, report.notes                    # one line
    assert warnings(report)[0].startswith("⚠ this run was not recorded: the store ")
    assert "the model is as the cell left it" in warnings(report)[0]
    assert report.run is None and trained_state(shell, report)
    return report


@pytest.mark.parametrize("options", ["", "--cache"])
def test_a_bad_store_path_keeps_the_fit(shell, options):
    shell.run_line_magic("config", "ReproMagics.store = '/proc/nope/x'")
    snapshot = shell.run_cell("%repro_snapshot model --name again").result
    assert snapshot.status.startswith("⚠ not saved: the store '/proc/nope/x' cannot be written (No such file")
    assert snapshot.status.endswith("registered for this session only")
    assert "again" in magics(shell).snapshots
    report = unwritable_fit(shell, options)
    assert str(report.verdict) == "this run: first run with these inputs"
    assert "cannot be written (No such file or directory: /proc/nope)" in warnings(report)[0]
    assert not os.path.exists("/proc/nope")


def test_a_read_only_store_keeps_the_fit_and_still_compares(shell, read_only_folder):
    folder, make_read_only = read_only_folder
    shell.run_line_magic("config", f"ReproMagics.store = {folder!r}")
    shell.run_cell("%repro_snapshot model")
    recorded = fit(shell, "--cache")
    assert recorded.run == 1
    make_read_only()
    before = files_under(folder, contents=True)
    report = unwritable_fit(shell)
    assert str(report.verdict).startswith("this run: same inputs as run #1") and report.verdict.status == "identical"
    snapshot = shell.run_cell("%repro_snapshot model --name other").result
    assert snapshot.status.startswith("⚠ not saved: the store ") and "other" in magics(shell).snapshots
    replayed = fit(shell, "--cache")                                   # the cache still reads
    assert replayed.verdict.status == "cached" and len(warnings(replayed)) == 1
    assert files_under(folder, contents=True) == before                # nothing written, nothing half-written


# -- writes that fail part-way ------------------------------------------------------
def fail_on(monkeypatch, function, fragment, after=0):
    """Make ``os.<function>`` fail with ENOSPC on descriptors of files whose path holds
    ``fragment``, after ``after`` successful calls; ``os.write`` writes half first."""
    real, calls = getattr(os, function), []

    def failing(descriptor, *args):
        if fragment in os.readlink(f"/proc/self/fd/{descriptor}"):
            calls.append(1)
            if len(calls) > after:
                if function == "write":
                    real(descriptor, args[0][:len(args[0]) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(descriptor, *args)

    monkeypatch.setattr(os, function, failing)
    return calls


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to tell files apart")
def test_a_ledger_line_failing_part_way_leaves_nothing(shell, monkeypatch):
    store = magics(shell).store
    assert fit(shell).run == 1
    ledger = os.path.join(store, "ledger.jsonl")
    before = open(ledger, "rb").read()
    with monkeypatch.context() as patch:
        calls = fail_on(patch, "write", "ledger.jsonl")
        report = unwritable_fit(shell)
    assert calls and "No space left on device" in warnings(report)[0]
    assert open(ledger, "rb").read() == before                         # the half line was cut off
    after = fit(shell)
    assert after.run == 2 and Ledger(store).skipped == 0


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to tell files apart")
def test_a_state_or_snapshot_failing_part_way_leaves_nothing(shell, monkeypatch):
    """The data is written, then the disk fills before it is on disk (its fsync fails)."""
    store = magics(shell).store
    snapshots = files_under(os.path.join(store, "snapshots"))
    with monkeypatch.context() as patch:
        fail_on(patch, "fsync", f"{os.sep}states{os.sep}")
        report = fit(shell, "--cache")
        fail_on(patch, "fsync", f"{os.sep}snapshots{os.sep}")
        snapshot = shell.run_cell("%repro_snapshot model --name other").result
    assert report.run == 1 and trained_state(shell, report)            # recorded, and the fit kept
    assert warnings(report) == ["⚠ cache: the result's state was not stored: the store "
                                f"'{store}' cannot be written ([Errno 28] No space left on device)"]
    assert not files_under(os.path.join(store, "states"))              # no temporary file left
    assert snapshot.status.startswith("⚠ not saved: the store ") and "other" in magics(shell).snapshots
    assert stored_files(os.path.join(store, "snapshots")) == snapshots
    assert fit(shell, "--cache").verdict.status == "identical"         # nothing stale was left to replay


# -- the environment, once ----------------------------------------------------------
def test_the_environment_is_stored_once_and_read_back(shell):
    store = magics(shell).store
    for seed in (1, 2, 1):
        report = fit(shell, f"--seed {seed}")
    assert report.verdict.status == "identical"
    assert len(os.listdir(os.path.join(store, "environments"))) == 1
    lines = [json.loads(line) for line in open(os.path.join(store, "ledger.jsonl"), "rb")]
    assert all("env" not in line and len(line["env_ref"]) == 32 for line in lines)
    records = Ledger(store).records()
    assert all(record["env"]["keras"] == shell.run_cell("keras.__version__").result for record in records)
    assert all(magics(shell).session.signer.verifies(record) for record in records)  # as signed
    old = dict(lines[-1], env={"keras": "3.0.0"}, id="old")                          # an older line's layout
    del old["env_ref"]
    with open(os.path.join(store, "ledger.jsonl"), "a") as handle:
        handle.write(json.dumps(old) + "\n")
    assert Ledger(store).records()[-1]["env"] == {"keras": "3.0.0"}


# -- two processes ------------------------------------------------------------------
SHARER = '''
import sys
from jupyter_repro import Session
store, cap, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
session = Session(seed=42, store=store, cache_max_bytes=cap)
''' + MODEL + '''
session.snapshot(model)
for i in range(count):
    report = session.fit(model, lambda: model.fit(X, y, epochs=1, batch_size=16, verbose=0), seed=1 + i % 3, cache=True)
    assert report.run is not None, str(report)
    print("@@", report.run, report.verdict.status, report.notes, flush=True)
'''


def test_two_processes_share_a_store_while_one_evicts(tmp_path):
    store, count = tmp_path / ".repro", 6
    cap = MODEL_BYTES * 5  # the snapshot and one state or so: nearly every fit evicts
    processes = [subprocess.Popen([sys.executable, "-c", SHARER, str(store), str(cap), str(count)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
        assert out.count("@@") == count
    records = Ledger(store).records()
    assert len(records) == 2 * count and Ledger(store).skipped == 0   # every run recorded
    results = {}
    for record in records:                                             # replayed or trained: the same result
        results.setdefault(record["input_key"], set()).add(record["result"])
    assert len(results) == 3 and all(len(found) == 1 for found in results.values())
    assert DiskQuota(store, cap).usage() <= cap
    assert not [p for p in files_under(store) if os.path.basename(p).startswith(".") and not p.endswith(".lock")]


def test_an_entry_that_cannot_be_deleted_is_skipped_and_still_counted(tmp_path, monkeypatch):
    """Windows keeps a file another kernel has mapped: eviction goes on with the next one."""
    from pathlib import Path

    folder = tmp_path / "snapshots"
    folder.mkdir()
    for age, name in enumerate(["held", "old", "new"]):
        path = folder / f"{name}.safetensors"
        path.write_bytes(b"x" * 100)
        os.utime(path, (1000 + age, 1000 + age))
    real = Path.unlink

    def unlink(path, *args, **kwargs):
        if path.name.startswith("held"):
            raise PermissionError(13, "The process cannot access the file", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    quota = DiskQuota(tmp_path, 350)
    with quota.lock():
        assert quota.evict(room=100) == ["old"]                            # held stays, still counted
    assert sorted(p.name for p in folder.iterdir()) == ["held.safetensors", "new.safetensors"]
