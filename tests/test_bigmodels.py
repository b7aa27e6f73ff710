"""Big and fine-tuned models, in-process: what a snapshot keeps in memory, what a restore rewrites.

The real-kernel proofs (every dtype, KerasHub bfloat16 and LoRA) are in test_kernel_bigmodels.py.
"""
import gc
import types
import weakref

import numpy as np
import pytest
from IPython.core.error import UsageError
from traitlets import TraitError

from jupyter_repro.store.tensorfile import TensorFile

MODEL = '''
import numpy as np, keras
rng = np.random.default_rng(0)
X = rng.normal(size=(64, 6)).astype("float32"); y = X.sum(1, keepdims=True)
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu", dtype="{dtype}"),
                          keras.layers.Dropout(0.2), keras.layers.Dense(1)])
{prepare}
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
'''
FIT = "%%repro_fit model\nhistory = model.fit(X * {alpha}, y, epochs=2, batch_size=16, verbose=0)"


def magics(shell):
    return shell.magics_manager.registry["ReproMagics"]


def setup(shell, dtype="float32", prepare=""):
    shell.run_cell("%repro_seed 42")
    shell.run_cell(MODEL.format(dtype=dtype, prepare=prepare))
    return shell.run_cell("%repro_snapshot model").result


def fit(shell, alpha):
    return shell.run_cell(FIT.format(alpha=alpha)).result


def back_and_forth(shell):
    reports = [fit(shell, alpha) for alpha in (1.0, 0.5, 1.0)]
    assert reports[0].fingerprint == reports[2].fingerprint != reports[1].fingerprint
    assert reports[2].verdict.status == "identical"
    return reports


def reachable(root):
    """Every object ``root`` holds, directly or through others (classes, modules and
    functions are not followed: they are shared by everything)."""
    seen, stack = {}, [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, types.FunctionType)):
            continue
        seen[id(obj)] = obj
        stack.extend(gc.get_referents(obj))
    return list(seen.values())


def test_repro_snapshot_returns_a_description_that_holds_no_weights(ip):
    info = setup(ip)
    snapshot = magics(ip).snapshots["model"]
    assert snapshot.kept is not None                   # a small model: kept in memory too
    assert not any(isinstance(o, (np.ndarray, TensorFile)) for o in reachable(info))
    weights = weakref.ref(snapshot.kept[0])
    ip.run_cell("%repro_snapshot model")               # registered again: the first snapshot is let go
    del snapshot
    gc.collect()
    assert weights() is None and info.fingerprint == magics(ip).snapshots["model"].fingerprint
    assert "Snapshot('model': 5 variables" in repr(info) and "in memory" in repr(info)


def test_a_large_snapshot_is_not_held_in_memory_but_mapped_from_its_file(ip):
    magics(ip).snapshot_memory_max_bytes = 0
    info = setup(ip)
    snapshot = magics(ip).snapshots["model"]
    assert snapshot.kept is None and isinstance(snapshot.file, TensorFile)
    assert "memory-mapped from its file" in repr(info) and "saved to" in info.status
    back_and_forth(ip)


@pytest.mark.parametrize("dtype, prepare", [
    ("bfloat16", ""), ("float16", ""),
    ("float32", 'model.quantize("int8")'), ("float32", 'model.quantize("int4")'),
    ("float32", 'model.quantize("float8")'),
])
def test_every_dtype_goes_back_and_forth_in_memory_and_mapped(ip, dtype, prepare):
    magics(ip).snapshot_memory_max_bytes = 0
    setup(ip, dtype, prepare)
    dtypes = {str(v.dtype) for v in ip.user_ns["model"].variables}
    assert {"bfloat16": {"bfloat16"}, "float16": {"float16"}}.get(dtype, {"float32"}) <= dtypes
    if "int" in prepare:
        assert "int8" in dtypes
    back_and_forth(ip)


def test_lora_restores_what_training_changes_and_verifies_the_rest(ip):
    setup(ip, prepare="model.layers[0].enable_lora(2)")
    model = ip.user_ns["model"]
    frozen = [v for v in model.variables if not any(v is t for t in model.trainable_variables)]
    assert any(v.path.endswith("kernel") for v in frozen)
    reports = back_and_forth(ip)
    assert all(r.restored.unchanged >= 1 for r in reports)           # the frozen base kernel
    # Changed by a fit cell behind the optimizer's back: the next restore notices and rewrites it.
    ip.run_cell("%%repro_fit model\nhistory = model.fit(X, y, epochs=1, verbose=0)\n"
                "model.layers[0]._kernel.assign(model.layers[0]._kernel * 0)")
    again = fit(ip, 1.0)
    assert again.fingerprint == reports[0].fingerprint and again.restored.unchanged == reports[2].restored.unchanged - 1
    # Changed by the notebook between runs (weights loaded into the frozen base): the
    # notebook's own, kept and an input, said in the report (issue #20), not rewritten.
    ip.run_cell("model.layers[0]._kernel.assign(model.layers[0]._kernel * 0)")
    kept = fit(ip, 1.0)
    assert "user changes" in kept.inputs.parts and any("kept as the notebook set them" in n for n in kept.notes)
    assert kept.fingerprint != reports[0].fingerprint and not np.any(ip.user_ns["model"].layers[0]._kernel.numpy())


def test_a_stored_snapshot_changed_on_disk_is_refused_before_the_model_is_touched(ip):
    magics(ip).snapshot_memory_max_bytes = 0
    setup(ip)
    fit(ip, 1.0)
    path = magics(ip).snapshots["model"].file.path
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    before = ip.run_cell("[v.numpy().tobytes() for v in model.variables]").result
    with pytest.raises(UsageError, match="does not match its checksum .variable '.*'.; it was not loaded"):
        fit(ip, 0.5)
    assert ip.run_cell("[v.numpy().tobytes() for v in model.variables]").result == before


def test_snapshot_memory_cap_is_validated(ip):
    with pytest.raises(TraitError, match="snapshot_memory_max_bytes must be 0 or more"):
        magics(ip).snapshot_memory_max_bytes = -1
    assert magics(ip).snapshot_memory_max_bytes == 64 * 2**20


def test_trials_and_cache_with_bfloat16_and_int8(ip):
    setup(ip, "bfloat16")
    table = ip.run_cell("%%repro_fit model --seeds 1,42\nh = model.fit(X, y, epochs=1, verbose=0)").result
    assert list(table.index[:2]) == [1, 42]
    trained = ip.run_cell("%%repro_fit model --cache\nh = model.fit(X, y, epochs=1, verbose=0)").result
    cached = ip.run_cell("%%repro_fit model --cache\nh = model.fit(X, y, epochs=1, verbose=0)").result
    assert cached.verdict.status == "cached" and cached.fingerprint == trained.fingerprint
