"""Issue #13 in real kernels: "same inputs" covers everything a fit depends on.

Each test goes A -> B -> A the way a notebook user does (a preparation cell, then the fit
cell), and shows that B trains anew (other bytes than A), that the revisit of A gets
A's bytes with "identical" (or "restored from the cache" where the cache may replay),
and that no false "DIFFERS" appears. The twin at the end gives the same notebook a
deliberately non-deterministic fit cell and shows the verdict does fire. Every test runs
on each installed Keras backend, except the GradientTape loop (TensorFlow's API).
"""
import pytest

from kernel import BACKENDS, STATE_HASH, Kernel

SETUP = STATE_HASH + '''
import json, os, numpy as np, keras, tensorflow as tf
raw = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
Y = raw.sum(1).astype("float32")

def build():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(0.2), keras.layers.Dense(1)])
    return model

def gen(X, Y):
    while True:
        for i in range(0, len(X), 16):
            yield X[i:i + 16], Y[i:i + 16]

class Batches(keras.utils.PyDataset):
    def __init__(self, X, Y, **kwargs):
        super().__init__(**kwargs)
        self.X, self.Y = X, Y
    def __len__(self):
        return len(self.X) // 16
    def __getitem__(self, i):
        return self.X[i * 16:(i + 1) * 16], self.Y[i * 16:(i + 1) * 16]

def last_run():
    """The ledger's last line as the extension wrote it."""
    session = get_ipython().magics_manager.registry["ReproMagics"].session
    record = session.ledger.records()[-1]
    return {"verdict": record["verdict"], "reason": record.get("reason"), "state": state_hash(model)}
'''
MODEL = '''model = build()
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
'''


@pytest.fixture(scope="module", params=BACKENDS)
def kernel(request):
    with Kernel(env={"KERAS_BACKEND": request.param}) as kernel:
        kernel.run("%load_ext jupyter_repro\n%repro_seed 42")
        kernel.run(SETUP)
        kernel.backend = request.param
        yield kernel


def back_and_forth(kernel, prepare, fit, settings=("1.0", "2.0", "1.0"), model=MODEL):
    """Run ``prepare`` (formatted with each setting), then the fit cell; the runs' facts."""
    kernel.run(model)
    kernel.run("%repro_snapshot model")
    runs = []
    for setting in settings:
        kernel.run(prepare.format(setting=setting))
        out = kernel.run(fit)
        runs.append(dict(kernel.value("last_run()"), out=out))
    return runs


def assert_back_and_forth(runs, revisit=("identical",)):
    a, b, again = runs
    assert a["state"] != b["state"]                      # a changed setting trains anew
    assert again["state"] == a["state"]                  # the revisit gets A's bytes
    assert again["verdict"] in revisit, again["out"]
    assert not any(run["verdict"] == "differs" for run in runs), [run["out"] for run in runs]
    assert "DIFFERS" not in "".join(run["out"] for run in runs)


def test_generator_with_cache_trains_anew_and_never_replays(kernel):
    runs = back_and_forth(kernel, "X = raw * {setting}",
                          "%%repro_fit model --cache\nhistory = model.fit(gen(X, Y), steps_per_epoch=4, epochs=2, "
                          "verbose=0)")
    assert_back_and_forth(runs)
    assert all("cache not used: x is a generator, known only as the fit reads it" in run["out"] for run in runs)


def test_py_dataset_with_cache_trains_anew(kernel):
    runs = back_and_forth(kernel, "data = Batches(raw * {setting}, Y)",
                          "%%repro_fit model --cache\nhistory = model.fit(data, epochs=2, verbose=0)")
    assert_back_and_forth(runs)
    assert all("cache not used: x is a Batches" in run["out"] for run in runs)


def test_learning_rate_in_a_parameters_cell_is_an_input(kernel):
    model = MODEL.replace("Adam(0.01)", "Adam(LR)")
    runs = []
    for rate in ("0.01", "0.05", "0.01"):
        kernel.run(f"LR = {rate}\nX = raw")
        kernel.run(model)
        kernel.run("%repro_snapshot model")
        out = kernel.run("%%repro_fit model --cache\nhistory = model.fit(X, Y, epochs=2, verbose=0)")
        runs.append(dict(kernel.value("last_run()"), out=out))
    assert_back_and_forth(runs, revisit=("cached",))
    assert "restored from the cache" in runs[2]["out"]


def test_compile_after_the_snapshot_is_honoured(kernel):
    kernel.run("X = raw")
    kernel.run(MODEL)
    kernel.run("%repro_snapshot model")
    fit = "%%repro_fit model --cache\nhistory = model.fit(X, Y, epochs=2, verbose=0)"
    runs = []
    for loss in ("mse", "mae", "mse"):
        kernel.run(f"model.compile(optimizer=keras.optimizers.Adam(0.01), loss='{loss}')")
        out = kernel.run(fit)
        runs.append(dict(kernel.value("last_run()"), out=out, loss=kernel.value("model.loss")))
    assert [run["loss"] for run in runs] == ["mse", "mae", "mse"]      # never silently the snapshot's
    assert "compiled with the model's current settings, not the snapshot's: loss 'mse' → 'mae'" in runs[1]["out"]
    assert_back_and_forth(runs, revisit=("cached",))


TAPE_LOOP = '''%%repro_fit model
optimizer = keras.optimizers.Adam(0.01)
for epoch in range(2):
    for i in range(0, len(X), 16):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(X[i:i + 16], training=True)[:, 0] - Y[i:i + 16]) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
'''


def test_gradient_tape_loop_reads_its_data_from_the_notebook(kernel):
    if kernel.backend != "tensorflow":
        pytest.skip("tf.GradientTape loops train TensorFlow-backend models only")
    runs = back_and_forth(kernel, "X = raw * {setting}", TAPE_LOOP)
    assert_back_and_forth(runs)
    assert "no model.fit in the cell" in runs[0]["out"]


def test_rebuilt_tf_data_pipeline_with_map_is_recognised(kernel):
    prepare = "ds = tf.data.Dataset.from_tensor_slices((raw * {setting}, Y)).map(lambda a, b: (a * 2.0, b)).batch(16)"
    runs = back_and_forth(kernel, prepare, "%%repro_fit model --cache\nhistory = model.fit(ds, epochs=2, verbose=0)")
    assert_back_and_forth(runs, revisit=("cached",))


def test_file_backed_dataset_follows_the_file(kernel, tmp_path):
    path = tmp_path / "rows.csv"
    prepare = (f"rows = raw * {{setting}}\n"
               f"with open(r'{path}', 'w') as f:\n"
               f"    f.write('\\n'.join(','.join(map(str, r)) + ',' + str(t) for r, t in zip(rows.tolist(), Y.tolist())))\n")
    fit = (f"%%repro_fit model --cache\n"
           f"ds = tf.data.TextLineDataset(r'{path}').map(lambda line: tf.strings.to_number(tf.strings.split(line, ',')))\n"
           f"ds = ds.map(lambda v: (v[:4], v[4])).batch(16)\n"
           f"history = model.fit(ds, epochs=2, verbose=0)")
    runs = back_and_forth(kernel, prepare, fit)
    assert_back_and_forth(runs)
    assert "cache not used: x is a tf.data pipeline that reads outside its graph (TextLineDataset" in runs[0]["out"]


def test_twin_a_non_deterministic_fit_does_get_differs(kernel):
    fit = ("%%repro_fit model\nbias = model.layers[-1].bias\n"
           "bias.assign(bias + np.random.default_rng().normal(size=bias.shape).astype('float32'))\n"
           "history = model.fit(X, Y, epochs=2, verbose=0)")
    runs = back_and_forth(kernel, "X = raw * {setting}", fit, settings=("1.0", "1.0"))
    assert runs[0]["verdict"] == "first" and runs[1]["verdict"] == "differs"
    assert "result DIFFERS; environment unchanged, so the fit itself is not deterministic" in runs[1]["out"]


def test_a_comment_or_reformatting_keeps_the_initial_weights(kernel):
    def initial(cell):
        kernel.run(cell)
        return kernel.value("state_hash(model)")

    plain = initial("model = build()")
    assert initial("# the model, again\nmodel = build( )\n\n") == plain
    assert initial("model = (\n    build()\n)  # reformatted") == plain
    assert initial("model = build()\nunused = 2") != plain       # a changed cell draws anew


def test_gradient_tape_loop_that_loads_its_data_from_disk_follows_the_file(kernel, tmp_path):
    """The data never passes through a notebook name: only the file it reads tells A from B."""
    if kernel.backend != "tensorflow":
        pytest.skip("tf.GradientTape loops train TensorFlow-backend models only")
    path = tmp_path / "X.npy"
    fit = TAPE_LOOP.replace("%%repro_fit model\n", f"%%repro_fit model\nX = np.load(r'{path}')\n")
    runs = back_and_forth(kernel, f"np.save(r'{path}', raw * {{setting}})", fit)
    assert_back_and_forth(runs)
    assert "the files it opened (1)" in runs[0]["out"]
