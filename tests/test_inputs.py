"""What a run depends on (run/inputs.py, values/fingerprint.py, values/source.py), signatures and the
plain-Python Session: fast, in-process."""
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jupyter_repro.errors import Unfingerprintable
from jupyter_repro.values.fingerprint import fingerprint_value
from jupyter_repro.values.keras_values import without_layer_names
from jupyter_repro.run.inputs import Inputs, add_cell, changed
from jupyter_repro.store.signing import Signer
from jupyter_repro.values.source import canonical_source, names_read


def test_values_by_content():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    assert fingerprint_value(frame) == fingerprint_value(frame.copy())
    assert fingerprint_value(frame) != fingerprint_value(frame.assign(b=["x", "z"]))
    assert fingerprint_value(np.zeros(3, "float32")) != fingerprint_value(np.zeros(3, "float64"))
    assert fingerprint_value({"a": [1, (2, 3)], "b": {4}}) == fingerprint_value({"b": {4}, "a": [1, (2, 3)]})


def test_random_generators_count_by_their_state():
    assert fingerprint_value(np.random.default_rng(1)) == fingerprint_value(np.random.default_rng(1))
    assert fingerprint_value(np.random.default_rng(1)) != fingerprint_value(np.random.default_rng(2))
    assert fingerprint_value(random.Random(3)) != fingerprint_value(random.Random(4))


def test_objects_by_class_and_attributes_never_by_type_alone():
    class Noisy:
        def __init__(self, scale):
            self.scale, self.rng = scale, np.random.default_rng(0)

    assert fingerprint_value(Noisy(0.1)) == fingerprint_value(Noisy(0.1)) != fingerprint_value(Noisy(0.2))
    with pytest.raises(Unfingerprintable, match="whose content cannot be read"):
        fingerprint_value(object())


def make_function(scale, source="def f(x):\n    return x * SCALE + offset\n"):
    namespace = {"SCALE": scale}
    exec(compile("offset = 1\n" + source, "<cell-1>", "exec"), namespace)
    return namespace["f"]


def test_functions_by_code_constants_and_the_globals_they_read():
    assert fingerprint_value(make_function(2)) == fingerprint_value(make_function(2))
    assert fingerprint_value(make_function(2)) != fingerprint_value(make_function(3))          # a global it reads
    other = make_function(2, "def f(x):\n    return x * SCALE - offset\n")
    assert fingerprint_value(other) != fingerprint_value(make_function(2))                   # its code
    commented = make_function(2, "def f(x):  # comment\n\n    return x * SCALE + offset\n")
    assert fingerprint_value(commented) == fingerprint_value(make_function(2))              # not its layout


def test_closures_partials_and_library_functions():
    import functools

    def scaler(k):
        return lambda x: x * k
    assert fingerprint_value(scaler(2)) == fingerprint_value(scaler(2)) != fingerprint_value(scaler(3))
    assert fingerprint_value(functools.partial(max, 1)) != fingerprint_value(functools.partial(max, 2))
    assert fingerprint_value(np.mean) == fingerprint_value(np.mean) != fingerprint_value(np.median)


def test_generators_and_iterators_are_opaque_but_observable():
    def batches():
        yield 1
    for value in (batches(), iter([1, 2])):
        with pytest.raises(Unfingerprintable) as caught:
            fingerprint_value(value)
        assert caught.value.consumable
    inputs = Inputs()
    inputs.add("global g", batches())
    assert not inputs.comparable and inputs.reason == "g is a generator"


def test_tf_data_by_canonical_graph_or_observed():
    import tensorflow as tf

    X = np.arange(12, dtype="float32").reshape(6, 2)

    def pipeline(scale):
        return tf.data.Dataset.from_tensor_slices(X).map(lambda x: x * scale).batch(2)
    assert fingerprint_value(pipeline(2.0)) == fingerprint_value(pipeline(2.0))   # rebuilt: same
    assert fingerprint_value(pipeline(2.0)) != fingerprint_value(pipeline(3.0))
    generated = tf.data.Dataset.from_generator(lambda: iter([1]), output_signature=tf.TensorSpec((), tf.int32))
    with pytest.raises(Unfingerprintable, match=r"reads outside its graph .(PyFunc|GeneratorDataset)") as caught:
        fingerprint_value(generated)
    assert caught.value.consumable


def test_layer_names_do_not_count():
    a = {"name": "sequential_3", "layers": [{"class_name": "Dense", "config": {"name": "dense_7", "units": 4}}]}
    b = {"name": "sequential", "layers": [{"class_name": "Dense", "config": {"name": "dense", "units": 4}}]}
    assert without_layer_names(a) == without_layer_names(b)


def test_canonical_source_ignores_comments_and_layout_only():
    assert canonical_source("a = f( 1 )  # one\n\n") == canonical_source("a=f(1)")
    assert canonical_source("a = 'x'") == canonical_source('a = "x"')
    assert canonical_source("a = f(1)") != canonical_source("a = f(2)")


def test_names_read_before_they_are_bound():
    cell = ("history = model.fit(X, y, epochs=EPOCHS)\nrmse = np.sqrt(history.history['loss'][-1])\n"
            "def step(q):\n    return q + W\nfor i in range(3):\n    loss = step(i)\nprint(loss, [a * b for a in z])")
    assert names_read(cell) == ["model", "X", "y", "EPOCHS", "np", "W", "range", "print", "z", "b"]


def test_cell_inputs_and_what_changed():
    namespace = {"X": np.ones(3), "np": np, "history": object()}
    first, second = Inputs(), Inputs()
    add_cell(first, "history = fit(X)\nprint(history)", namespace)
    add_cell(second, "history = fit(X)  # same\nprint(history)", dict(namespace, X=np.zeros(3)))
    assert first.comparable and "global history" not in first.parts      # the cell's own output
    assert changed(second.parts, first.parts) == ["X"]


def test_signatures_verify_only_this_installation(tmp_path):
    mine, theirs = Signer(tmp_path / "a.key"), Signer(tmp_path / "b.key")
    record = mine.sign({"input_key": "k", "result": "r", "run": 3})
    assert mine.verifies(record) and not theirs.verifies(record)
    assert not mine.verifies(dict(record, result="other"))
    assert not mine.verifies({"input_key": "k", "result": "r"})
    assert oct((tmp_path / "a.key").stat().st_mode & 0o777) == "0o600"


SCRIPT = r'''
import sys

class NoIPython:  # IPython cannot be imported in this script: the core must not need it
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "IPython":
            raise ImportError("IPython is blocked in this test")
sys.meta_path.insert(0, NoIPython())
from jupyter_repro import Session
session = Session(seed=42, store=sys.argv[1])
import numpy as np, keras
X = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dropout(0.3), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
session.snapshot(model)
verdicts = []
for scale in (1.0, 2.0, 1.0):
    data = X * scale
    def train():
        model.fit(data, data.sum(1), epochs=2, verbose=0)
    verdicts.append(session.fit(model, train).verdict.status)
print("@@", verdicts, "IPython" in sys.modules)
'''


def test_a_script_gets_verdicts_without_ipython(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / ".repro")], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("@@")[1].split() == ["['first',", "'first',", "'identical']", "False"]


def test_crafted_state_with_matching_checksums_is_not_replayed(ip, tmp_path):
    """A .repro/ folder edited by hand, or copied from elsewhere: checksums match the
    bytes, only the signature tells. Neither kind is replayed; both train anew."""
    from jupyter_repro.run.cache import StateCache
    from jupyter_repro.store.tensorfile import read_manifest, write

    ip.run_cell("%repro_seed 42")
    ip.run_cell("import numpy as np, keras\nX = np.ones((32, 3), 'float32')\n"
                "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])\n"
                "model.compile(optimizer='adam', loss='mse')")
    ip.run_cell("%repro_snapshot model")
    fit = "%%repro_fit model --cache\nhistory = model.fit(X, X.sum(1), epochs=2, verbose=0)"
    trained = ip.run_cell(fit).result
    store = Path(ip.magics_manager.registry["ReproMagics"].store)
    path = next(store.glob("states/*.safetensors"))
    manifest = read_manifest(path)
    signature = {key: manifest[key] for key in manifest if key.startswith("sig")}
    assert signature, manifest.keys()
    specs = [(v["path"], tuple(v["shape"]), v["dtype"]) for v in manifest["variables"]]
    kept = {k: manifest[k] for k in ("name", "fingerprint", "created", "data", "extra")}
    write(path, kept, specs, lambda i: np.full(specs[i][1], 7, specs[i][2]),          # edited by hand:
          sign=lambda m: dict(m, **signature))                                       # checksums match, the old signature
    report = ip.run_cell(fit).result
    assert report.verdict.status == "identical" and report.fingerprint == trained.fingerprint   # trained
    assert "not signed by this installation" in str(report)

    # Copied from elsewhere: a state and a ledger line for these inputs, signed with another key.
    ledger = store / "ledger.jsonl"
    line = json.loads(ledger.read_text().splitlines()[0])
    other = Signer(tmp_path / "elsewhere.key")
    shutil.rmtree(store / "states")
    StateCache(store, signer=other).save("f" * 32, ip.user_ns["model"], ip.user_ns["history"], line["input_key"])
    ledger.write_text(json.dumps(other.sign(dict(line, result="f" * 32, state=True, id="copied"))) + "\n")
    report = ip.run_cell(fit).result
    assert report.verdict.status == "differs" and "from elsewhere" in str(report)   # compared, said whose
    assert "not signed by this installation" in str(report) and report.fingerprint == trained.fingerprint


def test_a_submodel_sharing_layers_with_the_model_does_not_make_every_run_new(ip):
    """An encoder built from the autoencoder's layers holds the trained weights between
    fits: its shared variables are the run's own state, not an input."""
    ip.run_cell("%repro_seed 42")
    ip.run_cell("import numpy as np, keras\nX = np.ones((32, 4), 'float32')\n"
                "inputs = keras.Input((4,))\ncode = keras.layers.Dense(2)(inputs)\n"
                "model = keras.Model(inputs, keras.layers.Dense(4)(code))\nencoder = keras.Model(inputs, code)\n"
                "model.compile(optimizer='adam', loss='mse')")
    ip.run_cell("%repro_snapshot model")
    fit = "%%repro_fit model\nhistory = model.fit(X, X, epochs=2, verbose=0)\nz = encoder.predict(X, verbose=0)"
    statuses = [ip.run_cell(fit).result.verdict.status for _ in range(2)]
    assert statuses == ["first", "identical"]
