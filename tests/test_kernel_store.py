"""A store that cannot be written, in a real kernel: a bad path, a read-only folder, a full
disk. The fit is kept, the report says so in one line, nothing half-written stays. One
backend (TensorFlow): what the store does with a failed write does not depend on it."""
import os

import pytest

from kernel import STATE_HASH, Kernel
from store_folders import files_under, read_only_folder, small_disk  # noqa: F401 -- fixtures

SETUP = STATE_HASH + '''
import numpy as np, keras
from jupyter_repro import model_fingerprint
rng = np.random.default_rng(0)
X = rng.normal(size=(64, 64)).astype("float32"); y = X.sum(1)
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
initial = state_hash(model)
'''  # a 67 KB snapshot; a state (with Adam's moments) of 198 KiB
FIT = "%%repro_fit model {options}\nhistory = model.fit(X, y, epochs=2, batch_size=16, verbose=0)"


@pytest.fixture(scope="module")
def kernel():
    with Kernel(env={"KERAS_BACKEND": "tensorflow"}) as kernel:
        kernel.run("%load_ext jupyter_repro\n%repro_seed 42")
        kernel.run(SETUP)
        kernel.run("%repro_snapshot model")
        yield kernel


def warnings(out):
    return [line for line in out.splitlines() if line.startswith("⚠")]


def fit(kernel, options=""):
    """The fit cell's output; it finished (a traceback raises KernelError) and the model
    holds its result, not the snapshot's state."""
    out = kernel.run(FIT.format(options=options))
    assert kernel.value("state_hash(model) != initial and _.fingerprint == model_fingerprint(model)")
    return out


def fit_not_recorded(kernel, options=""):
    out = fit(kernel, options)
    assert len(warnings(out)) == 1, out
    assert warnings(out)[0].startswith("⚠ this run was not recorded: the store ")
    assert warnings(out)[0].endswith("; the model is as the cell left it")
    return out


def test_a_bad_path(kernel):
    kernel.run("%config ReproMagics.store = '/proc/nope/x'")
    out = kernel.run("%repro_snapshot model --name again")
    assert "⚠ not saved: the store '/proc/nope/x' cannot be written (No such file or directory: /proc/nope); " \
           "registered for this session only" in out
    assert kernel.value("'again' in get_ipython().magics_manager.registry['ReproMagics'].snapshots")
    for options in ("", "--cache"):
        out = fit_not_recorded(kernel, options)
        assert "this run: first run with these inputs" in out
        assert "cannot be written (No such file or directory: /proc/nope)" in warnings(out)[0]


def test_a_read_only_folder(kernel, read_only_folder):
    folder, make_read_only = read_only_folder
    kernel.run(f"%config ReproMagics.store = {folder!r}")
    kernel.run("%repro_snapshot model")
    assert "run #1: first run with these inputs" in fit(kernel)
    make_read_only()
    before = files_under(folder, contents=True)
    out = fit_not_recorded(kernel)
    assert "this run: same inputs as run #1" in out and "→ identical ✓" in out   # earlier runs still count
    out = kernel.run("%repro_snapshot model --name other")
    assert "⚠ not saved: the store " in out and "registered for this session only" in out
    assert files_under(folder, contents=True) == before                          # nothing written at all


def test_a_full_disk(kernel, small_disk):
    store = os.path.join(small_disk, ".repro")
    kernel.run(f"%config ReproMagics.store = {store!r}")
    kernel.run("%repro_snapshot model")                                # fits in 256 KiB; a state does not
    out = fit(kernel, "--cache")
    assert "run #1: first run with these inputs" in out and warnings(out) == [
        f"⚠ cache: the result's state was not stored: the store '{store}' cannot be written "
        "([Errno 28] No space left on device)"], out
    assert not files_under(os.path.join(store, "states"))              # not the part written before the disk filled
    snapshots = files_under(os.path.join(store, "snapshots"))
    with open(os.path.join(small_disk, "filler"), "wb", buffering=0) as handle:  # now nothing is left
        with pytest.raises(OSError, match="No space left on device"):
            while True:
                handle.write(b"\0" * 4096)
    out = kernel.run("%repro_snapshot model --name other")
    assert "⚠ not saved: the store " in out and "No space left on device" in out
    assert files_under(os.path.join(store, "snapshots")) == snapshots
    out = fit(kernel, "--cache")                                       # its line may still fit in the ledger's last page
    assert len(warnings(out)) == 1
    runs, skipped = kernel.value(f"(lambda ledger: (len(ledger.records()), ledger.skipped))"
                                 f"(__import__('jupyter_repro').Ledger({store!r}))")
    assert runs in (1, 2) and skipped == 0                              # no half line
    assert not [p for p in files_under(store) if os.path.basename(p).startswith(".") and not p.endswith(".lock")]
