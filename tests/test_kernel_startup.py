"""Across sessions: seeding at kernel start, and fresh kernels agreeing to the bit."""
import tempfile

import nbformat
import pytest
from nbclient import NotebookClient

from kernel import BACKENDS, QUIET_TF, STATE_HASH, Kernel

FIRST_CELL = '''import sys
repro = get_ipython().magics_manager.registry["ReproMagics"]
print(sys.modules.get("tensorflow") is None, repro.seeder.seed, repro.seeder.hook_armed)
import tensorflow as tf
print(tf.random.uniform([3]).numpy().tolist())'''


def test_profile_config_seeds_before_first_cell_without_importing_tensorflow(tmp_path):
    profile = tmp_path / "profile_default"
    profile.mkdir()
    (profile / "ipython_config.py").write_text(
        'c.InteractiveShellApp.extensions = ["jupyter_repro"]\nc.ReproMagics.seed = 42\n')
    with Kernel(env={"IPYTHONDIR": str(tmp_path)}) as kernel:
        lines = kernel.run(FIRST_CELL).splitlines()
    assert lines[0] == "True 42 True"      # loaded and seeded; TensorFlow not imported by it
    # The first draw after import is the one the cell's seed gives: seeded, not random.
    with Kernel() as reference:
        reference.run("import tensorflow as tf\nfrom jupyter_repro import cell_seed\n"
                      f"tf.random.set_seed(cell_seed(42, {FIRST_CELL!r}))")
        assert lines[1] == reference.run("print(tf.random.uniform([3]).numpy().tolist())").strip()


NOTEBOOK = [
    "%load_ext jupyter_repro\n%repro_seed 7",
    "import numpy as np, keras\n" + STATE_HASH,
    "X = np.random.normal(size=(128, 5)).astype('float32')\ny = X.sum(1, keepdims=True)",
    "model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation='relu'),\n"
    "    keras.layers.Dropout(0.2), keras.layers.BatchNormalization(), keras.layers.Dense(1)])\n"
    "model.compile(keras.optimizers.Adam(0.01), 'mse')",
    "%repro_snapshot model",
    "%%repro_fit model\nhistory = model.fit(X, y, epochs=2, batch_size=16, verbose=0)",
    "print(state_hash(model), history_hash(history))",
]


def run_notebook(backend):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK + [
        "print(keras.backend.backend())"]])
    client = NotebookClient(notebook, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": tempfile.mkdtemp(prefix="repro-nb-")}})
    client.execute()
    assert notebook.cells[-1].outputs[0]["text"].strip() == backend
    return notebook.cells[-2].outputs[0]["text"].strip()


@pytest.mark.parametrize("backend", BACKENDS)
def test_three_fresh_kernels_give_identical_variables(monkeypatch, backend):
    for key, value in QUIET_TF.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KERAS_BACKEND", backend)
    results = [run_notebook(backend) for _ in range(3)]
    assert len(results[0]) == 129 and results[0] == results[1] == results[2]
