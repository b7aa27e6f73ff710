"""One notebook per Keras backend, saved on this CPU, checked in kernels under emulated CPUs
(``qemu-x86_64 -cpu SandyBridge``: AVX, no AVX2/FMA; ``-cpu Haswell``: AVX2 and FMA). A
separate CI tier: ``pytest -m emulated`` (``.ci/run`` installs Debian's qemu-user); skipped,
saying so, where ``qemu-x86_64`` or a backend is absent. An emulated kernel takes about a
minute on TensorFlow and several on JAX and PyTorch (their import and XLA's compiles).

* a backend the mode covers (TensorFlow, JAX): with the portable mode (kernelspec ``env``) on
  both sides, ``pytest --repro --repro-against saved`` passes: the same bits, data cell of
  NumPy math included, and the in-kernel ``%repro_seed --portable`` report says every pin is
  in force;
* its twin, without the mode: the fit differs, the report names the CPU's instruction sets and
  gives the size of the difference; with ``--repro-tolerance`` it passes, "NOT bit-identical".
  On JAX the initial weights differ too (XLA's generated initializer code): a tolerance covers
  them because the CPU's instruction sets changed (``check.within``);
* the AVX2 floor (``--portable avx2``, x86-64-v3): with its pins on both sides the notebook,
  a convolutional model's fit included, gives the same bits under ``-cpu Haswell`` (AVX2, FMA,
  no AVX-512) as on this CPU; its twin, without the mode, differs there;
* a backend it does not cover (PyTorch): with the mode on both sides, the in-kernel report says
  "not portable" with the reason, and the check fails naming the CPU change and the size: the
  mode is not claimed where it does not hold; a tolerance passes it, "NOT bit-identical".
"""
import json
import shutil
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_repro.run.check import check_notebook
from jupyter_repro.run.divergence import Tolerance
from jupyter_repro.kernelspec import kernel_spec
from jupyter_repro.seeding.portable import NOT_COVERED, floor

from kernel import QUIET_TF, missing

QEMU = shutil.which("qemu-x86_64")
pytestmark = [
    pytest.mark.emulated,
    pytest.mark.skipif(QEMU is None, reason="qemu-x86_64 not installed (apt-get install qemu-user; .ci/run does)"),
]
PLUGIN = ["-p", "jupyter_repro.pytest_plugin"]
pytest_plugins = ["pytester"]
REPORT = "portable-report.txt"


def backends(*names):
    return [pytest.param(name, marks=pytest.mark.skipif(bool(missing(name)), reason=missing(name) or "installed"))
            for name in names]


SEED = "%load_ext jupyter_repro\n%repro_seed 42"
# the in-kernel report, kept in a file beside the notebook (the check keeps no cell output)
def seed_portable(portable):
    option = "--portable" if portable is True else f"--portable {portable}"
    return ["%load_ext jupyter_repro", f"%%capture seeded\n%repro_seed 42 {option}",
            f"open({REPORT!r}, 'w').write(seeded.stdout)"]

CELLS = [
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
# the kind of model the AVX2 floor is for: convolutions (oneDNN's sgemm under Eigen's), small enough to emulate
CONV_CELLS = [
    "Xc = rng.normal(size=(256, 32, 8)).astype('float32'); yc = Xc[:, :, 0].mean(1)\n"
    "conv = keras.Sequential([keras.Input((32, 8)), keras.layers.Conv1D(32, 5, activation='relu'),\n"
    "    keras.layers.Conv1D(32, 5, activation='relu'), keras.layers.GlobalAveragePooling1D(),\n"
    "    keras.layers.Dense(256, activation='relu'), keras.layers.Dense(1)])\n"
    "conv.compile('adam', 'mse')",
    "%repro_snapshot conv",
    "%%repro_fit conv\nconv.fit(Xc, yc, epochs=2, batch_size=64, verbose=0)",
]


def kernelspec(folder, name, env, cpu=None):
    """A kernelspec running this Python (under ``qemu-x86_64 -cpu CPU`` when given)."""
    argv = ([QEMU, "-cpu", cpu] if cpu else []) + [sys.executable, "-m", "ipykernel_launcher", "-f",
                                                   "{connection_file}"]
    where = folder / "kernels" / name
    where.mkdir(parents=True, exist_ok=True)
    (where / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name, "language": "python",
                                                   "env": dict(QUIET_TF, **env)}))


def env(backend, portable):
    """The env ``install-kernel --backend B [--portable]`` writes (its argv is the test's own)."""
    return kernel_spec(42, backend, backend, portable)["env"]


@pytest.fixture(scope="module")
def share(tmp_path_factory):
    return tmp_path_factory.mktemp("share")


@pytest.fixture
def jupyter(share, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(share))
    monkeypatch.setenv("PYTHONPATH", ":".join(p for p in sys.path if p))  # the kernels import this worktree
    return share


@pytest.fixture(scope="module")
def saved(share, tmp_path_factory):
    """The notebook of (backend, portable), executed once in a native kernel and saved: shared by
    every test of that backend. ``portable``: False, True (the AVX floor) or a floor's name; the
    AVX2 floor's notebooks (``conv=True``) add a convolutional model."""
    notebooks = {}

    def notebook(backend, portable, conv=False):
        if (backend, portable, conv) not in notebooks:
            name = f"native-{backend}" + ("-portable" if portable is True else f"-{portable}" if portable else "") \
                + "-conv" * conv
            kernelspec(share, name, env(backend, portable))
            cells = (seed_portable(portable) if portable else [SEED]) + CELLS + CONV_CELLS * conv
            nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
            path = tmp_path_factory.mktemp(name) / f"{name}.ipynb"
            NotebookClient(nb, kernel_name=name, resources={"metadata": {"path": str(path.parent)}},
                           timeout=600).execute()
            nbformat.write(nb, path)
            notebooks[backend, portable, conv] = path
        return notebooks[backend, portable, conv]
    return notebook


def on(backend, cpu):
    return pytest.param(backend, cpu, marks=backends(backend)[0].marks, id=f"{backend}-{cpu}")


# SandyBridge is the floor; Haswell (between it and this CPU) once, on TensorFlow
@pytest.mark.parametrize("backend, cpu", [on("tensorflow", "SandyBridge"), on("tensorflow", "Haswell"),
                                          on("jax", "SandyBridge")])
def test_portable_mode_gives_the_same_bits_under_an_emulated_cpu(jupyter, saved, pytester, backend, cpu):
    notebook = saved(backend, True)
    kernelspec(jupyter, f"emulated-{backend}-portable-{cpu}", env(backend, True), cpu)
    shutil.copy(notebook, pytester.path / "portable.ipynb")
    result = pytester.runpytest(*PLUGIN, "--repro", "--repro-against", "saved", "--repro-runs", "1",
                                "--repro-kernel", f"emulated-{backend}-portable-{cpu}", "--repro-timeout", "900",
                                "portable.ipynb")
    result.assert_outcomes(passed=1)
    report = (pytester.path / REPORT).read_text()                    # written by the emulated kernel
    assert report.startswith(f"portable mode ({backend} backend, floor x86-64 with AVX") and "every pin in force" \
        in report.splitlines()[0], report


@pytest.mark.parametrize("backend", backends("tensorflow", "jax"))
def test_the_avx2_floor_gives_the_same_bits_under_an_emulated_haswell(jupyter, saved, pytester, backend):
    notebook = saved(backend, "avx2", conv=True)
    kernelspec(jupyter, f"emulated-{backend}-avx2-Haswell", env(backend, "avx2"), "Haswell")
    shutil.copy(notebook, pytester.path / "avx2.ipynb")
    result = pytester.runpytest(*PLUGIN, "--repro", "--repro-against", "saved", "--repro-runs", "1",
                                "--repro-kernel", f"emulated-{backend}-avx2-Haswell", "--repro-timeout", "900",
                                "avx2.ipynb")
    result.assert_outcomes(passed=2)                                 # its two fit cells: MLP, conv
    report = (pytester.path / REPORT).read_text()                    # written by the emulated kernel
    assert report.startswith(f"portable mode ({backend} backend, floor {floor('avx2').description}): "
                             "every pin in force"), report


@pytest.mark.parametrize("backend", backends("tensorflow"))
def test_without_the_avx2_floor_an_emulated_haswell_differs(jupyter, saved, backend):
    """The twin: the same notebook, convolutions included, saved natively without the mode,
    differs under ``-cpu Haswell``: the test above can fail."""
    kernelspec(jupyter, f"emulated-{backend}-Haswell", env(backend, False), "Haswell")
    check = check_notebook(saved(backend, False, conv=True), runs=1, kernel=f"emulated-{backend}-Haswell",
                           timeout=900, against="saved", progress=lambda text: None)
    outcomes = check.outcomes()
    assert not all(outcome.ok for outcome in outcomes)
    problems = [problem for outcome in outcomes for problem in outcome.problems]
    print(problems)
    assert any("the machine's arithmetic changed (the likely cause): cpu isa " in problem for problem in problems)


def without_the_mode(jupyter, saved, backend):
    """The notebook saved natively without the mode, checked in a kernel under an emulated
    SandyBridge without it: the check, and its one problem."""
    kernelspec(jupyter, f"emulated-{backend}", env(backend, False), "SandyBridge")
    check = check_notebook(saved(backend, False), runs=1, kernel=f"emulated-{backend}", timeout=900,
                           against="saved", progress=lambda text: None)
    (outcome,) = check.outcomes()
    assert not outcome.ok
    problem = outcome.problems[0]
    print(problem)
    assert problem.startswith("kernel 1 vs saved: inputs differ: y of model.fit, notebook value y")  # NumPy's math
    assert "the machine's arithmetic changed (the likely cause): cpu isa " in problem
    assert "first differs at epoch" in problem or "differs from the first epoch" in problem
    assert "largest weight difference " in problem and " ulp (relative " in problem
    assert "loss " in problem or problem.endswith("metrics equal")            # each metric's change, or none
    return check, problem


@pytest.mark.parametrize("backend", backends("tensorflow", "jax"))
def test_without_it_the_cpu_change_is_named_and_sized_and_a_tolerance_passes(jupyter, saved, backend):
    check, problem = without_the_mode(jupyter, saved, backend)
    if backend == "jax":  # XLA generates jax.random's code for the CPU it finds: the initializers differ too
        assert "the initial state (snapshot)" in problem.split("; ")[0]
    check.tolerance = Tolerance.parse("1e-3")                                  # the same run, with a tolerance
    (outcome,) = check.outcomes()
    assert outcome.ok and outcome.tolerated == [problem]
    assert check.table().endswith("1 fit cell(s): within tolerance metrics=0.001,weights=0.001, NOT bit-identical "
                                  "(1 cell(s) differ) ✓")


@pytest.mark.parametrize("backend", backends("torch"))
def test_where_the_mode_does_not_cover_it_says_not_portable_and_the_check_fails_sized(jupyter, saved, backend):
    notebook = saved(backend, True)
    (notebook.parent / REPORT).unlink()                                        # the native kernel's
    kernelspec(jupyter, f"emulated-{backend}-portable", env(backend, True), "SandyBridge")
    check = check_notebook(notebook, runs=1, kernel=f"emulated-{backend}-portable", timeout=900, against="saved",
                           progress=lambda text: None)
    report = (notebook.parent / REPORT).read_text()                            # the emulated kernel's
    assert f"not portable: {NOT_COVERED[backend]}" in report and "INCOMPLETE" in report.splitlines()[0]
    (outcome,) = check.outcomes()
    assert not outcome.ok
    problem = outcome.problems[0]
    print(report, problem)
    assert problem.startswith("kernel 1 vs saved: result differs (")           # the pins held NumPy's data cell
    assert " with the same inputs; the machine's arithmetic changed (the likely cause): " in problem
    assert "cpu isa " in problem and " → SSE41 SSE42 AVX; " in problem             # the CPU named, whatever this one is
    assert "largest weight difference " in problem and " ulp (relative " in problem
    check.tolerance = Tolerance.parse("1e-3")                                  # a CI's tolerance still passes it
    (outcome,) = check.outcomes()
    assert outcome.ok and outcome.tolerated == [problem] and "NOT bit-identical" in check.table()
