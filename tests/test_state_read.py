"""Issue #30 item 2-3: one read of the state per fit (model/state_read.py). The combined read
gives the fingerprint and digests the separate passes gave; the witness says "unchanged"
only where nothing wrote (every way of writing a variable tried, each a twin that must
say "changed"); a fit reads each variable once, the next fit and a LoRA restore read none
of what nothing wrote, and a stored snapshot is verified once, not at every fit.

The same witness on JAX and PyTorch runs in a process of each backend (marker backends)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from jupyter_repro import Session  # noqa: E402
from jupyter_repro.model import state_read  # noqa: E402
from jupyter_repro.model.snapshot import model_fingerprint  # noqa: E402
from jupyter_repro.store.signing import Signer  # noqa: E402
from jupyter_repro.store.tensorfile import TensorFile  # noqa: E402
from jupyter_repro.values.arrays import bytes_digest  # noqa: E402
from jupyter_repro.values.tensors import host_view  # noqa: E402

from kernel import needs  # noqa: E402

X = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
Y = X.sum(1, keepdims=True)


def model(lora: bool = False):
    built = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.BatchNormalization(),
                              keras.layers.Dense(1)])
    if lora:
        built.layers[0].enable_lora(2)
    built.compile(optimizer="adam", loss="mse")
    return built


def test_one_read_gives_the_fingerprint_and_every_digest():
    m = model()
    m.fit(X, Y, epochs=1, verbose=0)
    read = state_read.read_state(m)
    assert read.fingerprint == model_fingerprint(m)
    assert read.digests == [bytes_digest(host_view(v)) for v in m.variables]
    m.layers[0].kernel.assign(m.layers[0].kernel.numpy() + 1)                      # the twin: other bytes
    again = state_read.read_state(m)
    assert again.fingerprint != read.fingerprint and again.digests[0] != read.digests[0]
    assert again.digests[1:] == read.digests[1:]


WRITES = {
    "Variable.assign": lambda m: m.layers[0].kernel.assign(np.zeros((8, 16), "float32")),
    "Variable.assign_add": lambda m: m.layers[0].kernel.assign_add(np.ones((8, 16), "float32")),
    "set_weights": lambda m: m.set_weights([w + 1 for w in m.get_weights()]),
    "model.fit": lambda m: m.fit(X, Y, epochs=1, verbose=0),
    "tf.Variable.assign_sub": lambda m: m.layers[0].kernel.value.assign_sub(np.ones((8, 16), "float32")),
    "tf.Variable.scatter_nd_update": lambda m: m.layers[0].kernel.value.scatter_nd_update([[0, 0]], [5.0]),
    "a tf.function's apply_gradients": lambda m: _custom_step(m),
    "an XLA-compiled assign": lambda m: _xla_assign(m),
}


def _custom_step(m):
    import tensorflow as tf

    optimizer = keras.optimizers.SGD(0.1)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(m(X[:4], training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, m.trainable_variables), m.trainable_variables))
    step()


def _xla_assign(m):
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def step():
        m.layers[0].kernel.value.assign_add(tf.ones((8, 16)))
    step()


@pytest.mark.parametrize("write", list(WRITES))
def test_the_witness_sees_every_write_on_tensorflow(write):
    m = model()
    m.fit(X, Y, epochs=1, verbose=0)
    read = state_read.read_state(m)
    assert read.still(m.variables)                                   # nothing wrote: no need to read again
    held = np.array(read.marks[0][1])                                # a copy of the kernel's bytes as read
    WRITES[write](m)
    now = [bytes_digest(host_view(v)) for v in m.variables]
    same = read.unchanged(m.variables)
    assert not same[0] and not read.still(m.variables)               # the kernel was written: read again
    assert all(now[i] == read.digests[i] for i in range(len(same)) if same[i])  # "unchanged" is never wrong
    assert np.array_equal(read.marks[0][1], held)                    # the held buffer kept the bytes read
    read.release()
    assert read.unchanged(m.variables) == [False] * len(m.variables)


def session(tmp_path, **options):
    return Session(seed=42, store=str(tmp_path / "store"), signer=Signer(tmp_path / "key"), **options)


def counting(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_fit_reads_its_state_once_and_the_next_fit_hashes_nothing(tmp_path, monkeypatch):
    from jupyter_repro.model import model_state, snapshot

    m, s = model(), session(tmp_path)
    s.snapshot(m)
    first = s.fit(m, lambda: m.fit(X, Y, epochs=2, verbose=0))
    reads = counting(monkeypatch, state_read, "read_state")
    hashed = counting(monkeypatch, model_state, "bytes_digest")
    fingerprints = counting(monkeypatch, snapshot, "model_fingerprint")
    second = s.fit(m, lambda: m.fit(X, Y, epochs=2, verbose=0))
    assert second.verdict.status == "identical" and second.fingerprint == first.fingerprint
    assert len(reads) == 1 and not hashed                            # the last epoch's read is the result
    assert len(second.epochs) == 2 and second.epochs[-1] == second.fingerprint[:len(second.epochs[-1])]
    del reads[:], hashed[:], fingerprints[:]
    third = s.fit(m, lambda: (m.fit(X, Y, epochs=2, verbose=0), m.layers[2].kernel.assign_add(np.ones((16, 1), "float32"))))
    assert len(reads) == 2                                           # the twin: written after the fit: read again
    assert third.fingerprint != first.fingerprint and third.fingerprint == model_fingerprint(m)
    m.layers[0].kernel.assign(np.zeros((8, 16), "float32"))          # the notebook's change between fits
    fourth = s.fit(m, lambda: m.fit(X, Y, epochs=2, verbose=0))
    assert len(hashed) == 1                                          # only what the witness cannot vouch for
    assert any("kept as the notebook set them" in note for note in fourth.notes)
    assert "user changes" in fourth.inputs.parts


def test_a_lora_restore_reads_none_of_the_frozen_base(tmp_path, monkeypatch):
    from jupyter_repro.model import snapshot as snapshot_module

    m, s = model(lora=True), session(tmp_path, snapshot_memory_max_bytes=0)
    s.snapshot(m)
    first = s.fit(m, lambda: m.fit(X, Y, epochs=1, verbose=0))
    frozen = [v for v in m.variables if not v.trainable and "lora" not in v.path and "moving" not in v.path]
    assert frozen                                                    # the base kernel, frozen by enable_lora
    hashed = counting(monkeypatch, snapshot_module, "bytes_digest")
    second = s.fit(m, lambda: m.fit(X, Y, epochs=1, verbose=0))
    assert second.fingerprint == first.fingerprint and not hashed
    assert second.restored.unchanged >= len(frozen)
    m.layers[0]._kernel.assign(m.layers[0]._kernel.numpy() * 2)      # the twin: the base written by the notebook
    third = s.fit(m, lambda: m.fit(X, Y, epochs=1, verbose=0))
    assert third.fingerprint != first.fingerprint                    # honoured as the notebook's change
    assert any("kept as the notebook set them" in note for note in third.notes)


def test_a_stored_snapshot_is_verified_once_not_at_every_fit(tmp_path, monkeypatch):
    m, s = model(), session(tmp_path, snapshot_memory_max_bytes=0)  # restored from the mapped file
    s.snapshot(m)
    verified = counting(monkeypatch, TensorFile, "verify")
    for _ in range(3):
        s.fit(m, lambda: m.fit(X, Y, epochs=1, verbose=0))
    assert not verified                                              # written by this process: trusted
    file = s.snapshot_for().file
    os.utime(file.path, ns=(1, 1))                                   # the twin: its times moved: verified again
    s.fit(m, lambda: m.fit(X, Y, epochs=1, verbose=0))
    assert len(verified) == 1


WITNESS = textwrap.dedent("""
    import numpy as np, keras
    from jupyter_repro.model.state_read import read_state
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])
    m.compile(optimizer="adam", loss="mse")
    X = np.ones((32, 8), "float32")
    m.fit(X, X[:, :1], epochs=1, verbose=0)
    read = read_state(m)
    out = [read.still(m.variables)]
    m.layers[0].kernel.assign(np.zeros((8, 16), "float32"))
    out.append(read.unchanged(m.variables))
    read = read_state(m)
    m.fit(X, X[:, :1], epochs=1, verbose=0)
    out.append(read.unchanged(m.variables))
    read = read_state(m)
    if keras.backend.backend() == "torch":  # the idioms PyTorch's version counter misses
        m.layers[0].kernel.value.data.mul_(2)
        m.layers[0].bias.value.detach().numpy()[...] = 3
    out.append(read.unchanged(m.variables))
    print(out)
""")


@pytest.mark.parametrize("backend", [pytest.param(name, marks=needs(name)) for name in ("jax", "torch")])
def test_the_witness_on_jax_and_pytorch(backend):
    """JAX: the array object vouches. PyTorch: nothing does (``param.data`` writes, the twin
    here, move no version counter), so every variable is hashed again."""
    done = subprocess.run([sys.executable, "-c", WITNESS], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, KERAS_BACKEND=backend))
    assert done.returncode == 0, done.stderr[-2000:]
    still, after_assign, after_fit, after_data = eval(done.stdout.strip().splitlines()[-1])
    assert after_fit == [False] * 4                                  # a fit writes every variable
    if backend == "jax":
        assert still is True and after_assign == [False, True, True, True]   # only the kernel written
        assert after_data == [True] * 4
    else:
        assert still is False and after_assign == after_data == [False] * 4  # no witness: hashed


def test_a_deleted_model_takes_its_read_with_it(tmp_path):
    import gc

    s = session(tmp_path)
    m = model()
    s.snapshot(m)
    s.fit(m, lambda: m.fit(X, Y, epochs=1, verbose=0))
    assert s._left_read(m) is not None and s._left_read(m).marks
    del m
    gc.collect()
    assert not s._left                                               # no buffer of the model held


def test_no_witness_where_a_read_copies_or_replicas_differ():
    """An Embedding trained with SGD reads by copying (copy-on-read after a sparse update): a
    held copy never matches, so it gets no witness, and holds no copy of the table."""
    m = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(50, 4), keras.layers.Flatten(),
                          keras.layers.Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    m.fit(np.arange(30).reshape(10, 3) % 50, np.ones((10, 1)), epochs=1, verbose=0)
    read = state_read.read_state(m)
    table = next(i for i, v in enumerate(m.variables) if "embedding" in v.path)
    assert read.marks[table] is None and not read.unchanged(m.variables)[table]
    assert read.marks[-1] is not None                                # the Dense kernel still has one
