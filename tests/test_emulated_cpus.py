"""One notebook, saved on this CPU, checked in kernels under emulated CPUs (``qemu-x86_64 -cpu
SandyBridge``: AVX, no AVX2/FMA; ``-cpu Haswell``: AVX2 and FMA). A separate CI tier:
``pytest -m emulated`` (``.ci/run`` installs Debian's qemu-user); skipped, saying so, where
``qemu-x86_64`` is absent. Each emulated kernel takes about a minute (TensorFlow's import).

* with the portable mode (kernelspec ``env``) on both sides, ``pytest --repro
  --repro-against saved`` passes: the same bits, data cell of NumPy math included;
* without it, the fit differs, and the report names the CPU's instruction sets and gives
  the size of the difference; with ``--repro-tolerance`` it passes, still "not bit-identical".
"""
import json
import shutil
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_repro.run.check import check_notebook, read_cells
from jupyter_repro.run.divergence import Tolerance
from jupyter_repro.seeding.portable import PINS

from kernel import INSTALLED, QUIET_TF

QEMU = shutil.which("qemu-x86_64")
pytestmark = [
    pytest.mark.emulated,
    pytest.mark.skipif(QEMU is None, reason="qemu-x86_64 not installed (apt-get install qemu-user; .ci/run does)"),
    pytest.mark.skipif("tensorflow" not in INSTALLED, reason="TensorFlow not installed"),
]
PLUGIN = ["-p", "jupyter_repro.pytest_plugin"]
pytest_plugins = ["pytester"]

CELLS = [
    "%load_ext jupyter_repro\n%repro_seed 42",
    "import numpy as np, keras",
    # the data cell: NumPy math whose bits depend on the CPU (OpenBLAS, SIMD tanh/exp, glibc's exp)
    "rng = np.random.default_rng(0)\nX = rng.normal(size=(256, 16)).astype('float32')\n"
    "w = rng.normal(size=(16, 1)).astype('float32')\n"
    "y = (np.tanh(X @ w) + 0.1 * np.exp(X[:, :1] / 4) + np.exp(X.astype('float64')[:, 1:2] / 8)).astype('float32')",
    "model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation='tanh'), keras.layers.Dense(1)])\n"
    "model.compile('adam', 'mse')",
    "%repro_snapshot model",
    "%%repro_fit model\nhistory = model.fit(X, y, epochs=2, batch_size=32, verbose=0)",
]


def kernelspec(folder, name, env, cpu=None):
    """A kernelspec running this Python (under ``qemu-x86_64 -cpu CPU`` when given)."""
    argv = ([QEMU, "-cpu", cpu] if cpu else []) + [sys.executable, "-m", "ipykernel_launcher", "-f",
                                                   "{connection_file}"]
    where = folder / "kernels" / name
    where.mkdir(parents=True)
    (where / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name, "language": "python",
                                                   "env": dict(QUIET_TF, **env)}))


@pytest.fixture
def jupyter(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share"))
    monkeypatch.setenv("PYTHONPATH", ":".join(p for p in sys.path if p))  # the kernels import this worktree
    return tmp_path / "share"


def saved_notebook(path, kernel):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    NotebookClient(notebook, kernel_name=kernel, resources={"metadata": {"path": str(path.parent)}},
                   timeout=600).execute()
    nbformat.write(notebook, path)
    return read_cells(notebook)[-1].saved[0]


@pytest.mark.parametrize("cpu", ["SandyBridge", "Haswell"])
def test_portable_mode_gives_the_same_bits_under_an_emulated_cpu(jupyter, tmp_path, pytester, cpu):
    kernelspec(jupyter, "native-portable", PINS)
    kernelspec(jupyter, "emulated-portable", PINS, cpu)
    saved_notebook(pytester.path / "portable.ipynb", "native-portable")
    result = pytester.runpytest(*PLUGIN, "--repro", "--repro-against", "saved", "--repro-runs", "1",
                                "--repro-kernel", "emulated-portable", "--repro-timeout", "900", "portable.ipynb")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("cpu", ["SandyBridge"])
def test_without_it_the_cpu_change_is_named_and_sized_and_a_tolerance_passes(jupyter, tmp_path, cpu):
    kernelspec(jupyter, "native", {})
    kernelspec(jupyter, "emulated", {}, cpu)
    saved = saved_notebook(tmp_path / "native.ipynb", "native")
    check = check_notebook(tmp_path / "native.ipynb", runs=1, kernel="emulated", timeout=900, against="saved",
                           progress=lambda text: None)
    (outcome,) = check.outcomes()
    assert not outcome.ok
    problem = outcome.problems[0]
    assert problem.startswith("kernel 1 vs saved: inputs differ: ")            # NumPy's math gave other data
    assert "the machine's arithmetic changed (the likely cause): cpu isa " in problem
    assert "first differs at epoch" in problem or "differs from the first epoch" in problem
    assert "largest weight difference " in problem and " ulp (relative " in problem
    assert "loss " in problem or problem.endswith("metrics equal")            # each metric's change, or none
    check.tolerance = Tolerance.parse("1e-3")                                  # the same run, with a tolerance
    (outcome,) = check.outcomes()
    assert outcome.ok and outcome.tolerated == [problem]
    assert check.table().endswith("1 fit cell(s): within tolerance metrics=0.001,weights=0.001, NOT bit-identical "
                                  "(1 cell(s) differ) ✓")
    print(problem, saved["env"]["cpu isa"])
