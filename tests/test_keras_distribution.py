"""keras.distribution in a real kernel: DataParallel and ModelParallel over two CPU devices.

One JAX kernel with two CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``
in its environment, read when JAX starts). Each layout goes A -> B -> A through the magics:
the revisit of A has A's bytes (SHA-256 of every variable, computed in the kernel) and the
verdict "identical", and the variables really are spread over both devices. Each has its
twin: the usual recipe, in the same kernel, differs at the revisit. The layout is part of
a run's inputs: the same model, data and seed under ModelParallel is a first run, "changed:
distribution". Bad layouts are refused before the model is touched.
"""
import pytest

from kernel import STATE_HASH, Kernel, KernelError, needs

pytestmark = needs("jax")  # keras.distribution runs on the JAX backend

ENV = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}

SETUP = STATE_HASH + '''
import numpy as np, keras
X_raw = np.random.default_rng(0).normal(size=(128, 6)).astype("float32")
y = X_raw.sum(1, keepdims=True)
devices = keras.distribution.list_devices()
mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], devices)

def model_parallel(rules):
    layout_map = keras.distribution.LayoutMap(mesh)
    for pattern, axes in rules.items():
        layout_map[pattern] = axes
    return keras.distribution.ModelParallel(layout_map=layout_map)

def placement(model):
    """(devices, sharding spec) of every variable, as JAX holds it."""
    return [[len(v.value.sharding.device_set), list(getattr(v.value.sharding, "spec", ()))] for v in model.variables]

def last_run():
    session = get_ipython().magics_manager.registry["ReproMagics"].session
    record = session.ledger.records()[-1]
    return {"verdict": record["verdict"], "env": {k: record["env"][k] for k in ("processes", "keras distribution")}}
'''
DATA_PARALLEL = "distribution = keras.distribution.DataParallel(devices=devices)\n" \
                "keras.distribution.set_distribution(distribution)"
# The hidden layer's kernel and bias split over the two devices; the rest replicated.
MODEL_PARALLEL = "distribution = model_parallel({'.*hidden/kernel': (None, 'model'), '.*hidden/bias': ('model',)})\n" \
                 "keras.distribution.set_distribution(distribution)"
MODEL = '''optimizer = keras.optimizers.Adam(0.01)
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(12, activation="relu", name="hidden"),
                          keras.layers.Dropout(0.3), keras.layers.Dense(1, name="out")])
model.compile(optimizer, "mse")
initial = model.get_weights()'''
DATA = "alpha = {alpha}\nX = X_raw * alpha"
FIT = "history = model.fit(X, y, epochs=2, batch_size=16, verbose=0)"
PLAIN = "model.compile(optimizer, 'mse')\nmodel.set_weights(initial)\n" + FIT
SETTINGS = (1.0, 0.5, 1.0)


@pytest.fixture(scope="module")
def kernel():
    with Kernel(env=ENV) as kernel:
        kernel.run("%load_ext jupyter_repro\n%repro_seed 42")
        kernel.run(SETUP)
        assert kernel.value("len(devices)") == 2
        yield kernel


def back_and_forth(kernel, fit_cell):
    """A, B, A: each run's state hash and, for %%repro_fit, its verdict."""
    runs = []
    for alpha in SETTINGS:
        kernel.run(DATA.format(alpha=alpha))
        out = kernel.run(fit_cell)
        runs.append({"state": kernel.value("state_hash(model)"), "out": out})
    return runs


def repro_then_twin(kernel, distribution):
    kernel.run(distribution)
    kernel.run(MODEL)
    kernel.run("%repro_snapshot model")
    repro = back_and_forth(kernel, "%%repro_fit model\n" + FIT)
    placed = kernel.value("placement(model)")
    kernel.run(MODEL)                                    # the twin: the usual recipe, same kernel
    plain = back_and_forth(kernel, PLAIN)
    return repro, placed, plain


def test_data_parallel_back_and_forth_is_bit_identical_and_the_usual_recipe_is_not(kernel):
    repro, placed, plain = repro_then_twin(kernel, DATA_PARALLEL)
    a, b, again = repro
    assert again["state"] == a["state"] != b["state"]
    assert "same inputs as run #1" in again["out"] and "identical ✓" in again["out"]
    assert all(devices == 2 for devices, _ in placed)    # every variable on both devices
    assert kernel.value("last_run()")["env"] == {"processes": "1",
                                                 "keras distribution": "DataParallel over 2 devices (mesh batch=2)"}
    assert plain[0]["state"] != plain[2]["state"]         # the twin differs at the revisit


def test_model_parallel_back_and_forth_is_bit_identical_and_the_layout_is_an_input(kernel):
    repro, placed, plain = repro_then_twin(kernel, MODEL_PARALLEL)
    a, b, again = repro
    assert again["state"] == a["state"] != b["state"]
    assert "identical ✓" in again["out"]
    # The same model cell, data, seed and fit cell as under DataParallel: only the layout changed.
    assert "first run with these inputs (changed since run #3: distribution)" in a["out"], a["out"]
    assert placed[:2] == [[2, [None, "model"]], [2, ["model"]]]   # hidden kernel and bias: split in two
    assert plain[0]["state"] != plain[2]["state"]


def assert_refused(kernel, cell, match):
    """``cell`` fails with a one-line UsageError matching ``match``; model and optimizer unchanged."""
    before = kernel.value("[state_hash(model), id(model.optimizer), 'ran' in globals()]")
    with pytest.raises(KernelError) as excinfo:
        kernel.run(cell)
    assert excinfo.value.ename == "UsageError" and match in excinfo.value.evalue, excinfo.value.evalue
    assert kernel.value("[state_hash(model), id(model.optimizer), 'ran' in globals()]") == before
    return excinfo.value.evalue


def test_a_layout_the_snapshot_cannot_take_is_refused_and_changes_nothing(kernel):
    kernel.run(DATA_PARALLEL)
    kernel.run(MODEL)
    kernel.run("%repro_snapshot model")
    # Every kernel split over 'model': the output layer's (12, 1) kernel cannot be halved.
    kernel.run("keras.distribution.set_distribution(model_parallel({'.*kernel': (None, 'model')}))")
    message = assert_refused(kernel, "%%repro_fit model\nran = True\n" + FIT, "cannot lay out variable")
    assert "'sequential" in message and "out/kernel' (12, 1)" in message and "mesh axis 'model' (2 devices)" in message


def test_a_model_built_outside_the_distribution_is_refused_and_changes_nothing(kernel):
    kernel.run("keras.distribution.set_distribution(None)")
    kernel.run(MODEL)                                     # on one device
    kernel.run("%repro_snapshot model")
    kernel.run(DATA_PARALLEL)
    assert_refused(kernel, "%%repro_fit model\nran = True\n" + FIT, "the model was built outside it")
