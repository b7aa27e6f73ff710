"""Kernelspec, restart verdicts, ``jupyter-repro check`` and ``history``: real kernels."""
import json
import subprocess
import sys

import nbformat
from jupyter_client.kernelspec import KernelSpecManager

from kernel import Kernel

CLI = [sys.executable, "-m", "jupyter_repro.cli"]


def cli(*args, cwd=None):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=900, cwd=cwd)


def test_installed_kernel_fixes_hash_and_seeds_before_first_cell(tmp_path):
    done = cli("install-kernel", "--prefix", str(tmp_path), "--seed", "11", "--name", "repro-test")
    assert done.returncode == 0, done.stderr
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "share" / "jupyter" / "kernels")])
    first_cell = ('import sys\nrepro = get_ipython().magics_manager.registry["ReproMagics"]\n'
                  'print(hash("abc"), repro.seeder.seed, "tensorflow" in sys.modules)')
    seen = []
    for _ in range(2):
        with Kernel(kernel_name="repro-test", spec_manager=specs) as kernel:
            seen.append(kernel.run(first_cell).split())
    assert seen[0] == seen[1]
    assert seen[0][1:] == ["11", "False"]          # seeded at start; TensorFlow not imported by it
    plain = [Kernel().__enter__() for _ in range(2)]
    try:
        hashes = [k.run('print(hash("abc"))') for k in plain]
    finally:
        for k in plain:
            k.close()
    assert hashes[0] != hashes[1]                   # the twin: without it, hash() is random


def test_bad_kernel_options():
    done = cli("install-kernel", "--user", "--sys-prefix")
    assert done.returncode == 2 and "choose one of --user, --sys-prefix, --prefix DIR" in done.stderr
    done = cli("install-kernel", "--seed", "-4", "--prefix", "/tmp/never")
    assert done.returncode == 2 and "seed must be between 0 and" in done.stderr


SETUP = "%load_ext jupyter_repro\n%repro_seed 5"
MODEL = ("import numpy as np, keras\n"
         "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dropout(0.3),"
         " keras.layers.Dense(1)])\nmodel.compile(keras.optimizers.Adam(0.01), 'mse')")
DATA = "X = np.random.normal(size=(64, 3)).astype('float32')\ny = X.sum(1)"
FIT = "%%repro_fit model\nhistory = model.fit(X, y, epochs=2, batch_size=16, verbose=0)"


def test_restart_gives_identical_verdicts_then_a_truncated_snapshot_is_said(tmp_path):
    """Two sessions in one folder, then a third after the snapshot's file was cut short."""
    cells = [SETUP, MODEL, "%repro_snapshot model", DATA, FIT]
    outputs = []
    for _ in range(2):
        with Kernel(cwd=str(tmp_path)) as kernel:
            outputs.append([kernel.run(cell) for cell in cells])
    first, second = outputs
    assert "saved to" in first[2] and "first run with these inputs" in first[4]
    assert "matches the snapshot saved under 'model'" in second[2]
    assert "run #2: same inputs as run #1" in second[4] and "identical ✓" in second[4]
    table = cli("history", str(tmp_path / ".repro"))
    assert table.returncode == 0 and "identical" in table.stdout and "first" in table.stdout

    data = next((tmp_path / ".repro" / "snapshots").glob("*.safetensors"))
    data.write_bytes(data.read_bytes()[:-5])
    with Kernel(cwd=str(tmp_path)) as kernel:
        out = [kernel.run(cell) for cell in cells[:3]][-1]
    assert f"snapshot file .repro/snapshots/{data.name} is truncated (" in out and "saved a fresh copy" in out


def notebook(path, *cells):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, path)
    return str(path)


NOISE = ("%%repro_fit model\nclass Noise(keras.callbacks.Callback):\n"
         "    def on_epoch_end(self, epoch, logs=None):\n"
         "        kernel = self.model.layers[0].kernel\n"
         "        kernel.assign(kernel + np.random.default_rng().normal(0, 1e-3, kernel.shape).astype('float32'))\n"
         "history = model.fit(X, y, epochs=2, batch_size=16, verbose=0, callbacks=[Noise()])")


def test_check_passes_a_reproducible_notebook(tmp_path):
    done = cli("check", notebook(tmp_path / "ok.ipynb", SETUP, MODEL, "%repro_snapshot model", DATA, FIT, FIT))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cell   5  ✓ %%repro_fit model  (1 fit(s) × 2 kernel(s))" in done.stdout
    assert "2 fit cell(s): identical in 2 kernels; no fingerprints saved in the notebook to compare with ✓" in done.stdout


def test_check_names_a_result_that_differs_and_inputs_that_differ(tmp_path):
    """One notebook, one check (two kernels): a fit cell that adds unseeded noise to the
    weights (same inputs, other result), then an unseeded data cell (other inputs)."""
    unseeded = "X = np.random.default_rng().normal(size=(64, 3)).astype('float32')\ny = X.sum(1)"
    done = cli("check", notebook(tmp_path / "both.ipynb", SETUP, MODEL, "%repro_snapshot model", DATA, NOISE,
                                 unseeded, FIT))
    assert done.returncode == 1
    assert "cell   5  ✗ %%repro_fit model  (1 fit(s) × 2 kernel(s))\n          kernel 2 vs kernel 1: result differs (" \
        in done.stdout
    assert "with the same inputs; environment unchanged, so the fit itself is not deterministic" in done.stdout
    assert ("cell   7  ✗ %%repro_fit model  (1 fit(s) × 2 kernel(s))\n          kernel 2 vs kernel 1: inputs differ: "
            "x of model.fit, y of model.fit, notebook value X, notebook value y") in done.stdout


def test_check_usage_errors(tmp_path):
    done = cli("check", str(tmp_path / "missing.ipynb"))
    assert done.returncode == 2 and done.stderr == f"jupyter-repro check: {tmp_path / 'missing.ipynb'}: no such file; give the path of an .ipynb\n"
    done = cli("check")
    assert done.returncode == 2 and "give one NOTEBOOK (none given); usage: jupyter-repro check NOTEBOOK" in done.stderr
    done = cli("check", notebook(tmp_path / "nb.ipynb", SETUP), "--against", "saved", "--set", "EPOCHS=2")
    assert done.returncode == 2 and "jupyter-repro check: --set changes the inputs" in done.stderr
    done = cli("check", notebook(tmp_path / "nb.ipynb", SETUP), "--tolerance", "loss=1")
    assert done.returncode == 2 and "jupyter-repro check: tolerance 'loss=1': name metrics or weights" in done.stderr


def test_install_kernel_portable_puts_the_pins_in_the_kernels_env(tmp_path):
    from jupyter_repro.seeding.portable import PINS

    done = cli("install-kernel", "--prefix", str(tmp_path), "--name", "repro-portable", "--portable")
    assert done.returncode == 0, done.stderr
    assert ", portable, floor avx) in " in done.stdout
    spec = json.loads((tmp_path / "share" / "jupyter" / "kernels" / "repro-portable" / "kernel.json").read_text())
    assert {name: spec["env"][name] for name in PINS} == PINS and "--ReproMagics.portable=True" in spec["argv"]
