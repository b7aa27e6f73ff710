"""``jupyter-repro demo``: the notebook's back-and-forth, headless, in a fresh kernel, in the
portable mode by default; under an emulated Sandy Bridge (``-m emulated``, CI's third tier) its
table is the native one, digit for digit, and without the mode it is not."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from jupyter_repro.demo import NOTEBOOK, run_demo

from kernel import QUIET_TF

CLI = [sys.executable, "-m", "jupyter_repro.cli"]
README = Path(__file__).resolve().parent.parent / "README.md"
QEMU = shutil.which("qemu-x86_64")


def demo(*args, env=None):
    return subprocess.run(CLI + ["demo", *args], capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture
def no_cmapss(monkeypatch):
    monkeypatch.delenv("CMAPSS_DIR", raising=False)
    return {k: v for k, v in __import__("os").environ.items() if k != "CMAPSS_DIR"}


def readme_output(name):
    """The demo's output the README shows under ``<!-- demo: NAME -->``: its lines."""
    text = README.read_text(encoding="utf-8")
    return text.split(f"<!-- demo: {name} -->\n```\n", 1)[1].split("\n```", 1)[0].splitlines()


def table(lines):
    """The table's rows, from its heading to the first line that is not a run."""
    start = next(i for i, line in enumerate(lines) if line.startswith("run  alpha"))
    rows = [lines[start]]
    for line in lines[start + 1:]:
        if not line[:3].strip().isdigit():
            break
        rows.append(line.rstrip())
    return rows


def test_demo_on_synthetic_data_prints_the_readmes_table(tmp_path, no_cmapss):
    """The README's command, as a newcomer runs it: its table is the README's, digit for digit,
    where the library versions are the README's (another version may change the digits, and
    the README says so)."""
    done = demo("--output", str(tmp_path), env=no_cmapss)
    assert done.returncode == 0, done.stderr
    assert "SYNTHETIC fleet (seed 0), not NASA data" in done.stdout
    assert "run 4/4: alpha = 0.4" in done.stdout               # progress
    rows = [line.split() for line in table(done.stdout.splitlines())[1:]]
    assert rows[1][1:5] == rows[3][1:5]                        # alpha, both RMSEs, fingerprint
    assert rows[1][1:5] != rows[2][1:5]
    assert "identical to run 2 ✓" in done.stdout
    assert "mode: portable, every pin in force (tensorflow backend, the x86-64 AVX floor)" in done.stdout
    assert "these digits are the same on every x86-64 CPU with AVX" in done.stdout
    executed = nbformat.read(tmp_path / "turbofan_fd001.executed.ipynb", as_version=4)
    records = [json.loads(o["text"].split("@@repro ", 1)[1]) for c in executed.cells
               if "demo-record" in c.metadata.get("tags", []) for o in c.outputs]
    assert records[1] == records[3] and records[1] != records[2]
    assert (tmp_path / "val_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    shown = readme_output("synthetic")
    versions = [line.split(";")[0].strip() for line in shown if line.strip().startswith("TensorFlow ")]
    here = [line.split(";")[0].strip() for line in done.stdout.splitlines() if line.strip().startswith("TensorFlow ")]
    if set(versions) != set(here):  # the mode is printed before the fits and after the table
        pytest.skip(f"the README's table is for {versions[0]}; here: {here[0]}")
    assert table(done.stdout.splitlines()) == table(shown)


def test_demo_on_real_fd001(tmp_path, cmapss_dir):
    result = run_demo(alphas=(0.4, 0.4), epochs=1, data_dir=cmapss_dir, output=tmp_path,
                      progress=lambda line: None)
    assert result.data.startswith("NASA CMAPSS FD001")
    first, again = result.runs
    assert again.identical and (first.fingerprint, first.test_rmse) == (again.fingerprint, again.test_rmse)
    assert 5 < first.test_rmse < 80


def test_twin_plain_notebook_is_caught_differing(tmp_path, no_cmapss):
    """Without %%repro_fit, the repeated alpha keeps training the same model: exit status 1."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        cell.source = cell.source.replace("%%repro_fit model\n", "")
    plain = tmp_path / "plain.ipynb"
    nbformat.write(notebook, plain)
    done = demo("--epochs", "1", "--alphas", "1.0,1.0", "--output", str(tmp_path), "--notebook", str(plain),
                env=no_cmapss)
    assert done.returncode == 1
    assert "DIFFERS from run 1 ✗" in done.stdout
    assert "a repeated setting gave a different result" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--alphas", "1.0,x"], "alphas must be numbers in (0, 1]"),
    (["--alphas", "1.5"], "alphas must be numbers in (0, 1]"),
    (["--epochs", "0"], "epochs must be at least 1"),
])
def test_demo_bad_options(args, message):
    done = demo(*args)
    assert done.returncode != 0 and message in done.stderr


def test_demo_missing_data_dir_names_the_files(tmp_path):
    done = demo("--data", str(tmp_path))
    assert done.returncode == 2
    assert f"missing train_FD001.txt, test_FD001.txt, RUL_FD001.txt in {tmp_path}" in done.stderr


def test_demo_native_says_so_and_sets_no_pin(tmp_path, no_cmapss):
    """--native: the kernel gets no pin, and the output says its digits are this CPU's."""
    done = demo("--epochs", "1", "--alphas", "0.4,0.4", "--output", str(tmp_path), "--native", env=no_cmapss)
    assert done.returncode == 0, done.stderr
    assert "mode: native (this CPU's own code paths)" in done.stdout
    assert "these digits can differ on another CPU" in done.stdout and "every pin" not in done.stdout
    executed = nbformat.read(tmp_path / "turbofan_fd001.executed.ipynb", as_version=4)
    (mode,) = [json.loads(o["text"].split("@@mode ", 1)[1]) for c in executed.cells
               if "demo-mode" in c.metadata.get("tags", []) for o in c.outputs]
    assert mode["report"] is None and not mode["complete"]


# -- under an emulated CPU (CI's third tier) -----------------------------------------------

SANDY_BRIDGE_ISA = "SSE41 SSE42 AVX"  # what NumPy's CPUID probe sees under qemu's SandyBridge: the floor
WALK = dict(alphas=(0.4, 0.2, 0.4), epochs=2, progress=lambda line: None)


@pytest.fixture
def sandy_bridge(tmp_path, monkeypatch, no_cmapss):
    """A kernelspec of this Python under ``qemu-x86_64 -cpu SandyBridge``, and no CMAPSS_DIR."""
    if QEMU is None:
        pytest.skip("qemu-x86_64 not installed (apt-get install qemu-user; .ci/run does)")
    where = tmp_path / "share" / "kernels" / "sandybridge"
    where.mkdir(parents=True)
    argv = [QEMU, "-cpu", "SandyBridge", sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (where / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "SandyBridge", "language": "python",
                                                   "env": QUIET_TF}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share"))
    monkeypatch.setenv("PYTHONPATH", ":".join(p for p in sys.path if p))  # the kernel imports this checkout
    return "sandybridge"


def both(tmp_path, kernel, portable):
    """The walk natively and in ``kernel``: (native result, emulated result)."""
    native = run_demo(output=tmp_path / "native", portable=portable, **WALK)
    emulated = run_demo(output=tmp_path / "emulated", portable=portable, kernel_name=kernel, timeout=3600, **WALK)
    print(native.table(), native.mode, emulated.table(), emulated.mode, sep="\n")
    assert emulated.mode.cpu_isa == SANDY_BRIDGE_ISA                     # it did run on the floor
    assert native.mode.cpu_isa != SANDY_BRIDGE_ISA, "this CPU is the floor itself: nothing to compare"
    assert native.reproducible and emulated.reproducible
    return native, emulated


@pytest.mark.emulated
def test_demo_table_is_the_same_under_an_emulated_sandy_bridge(tmp_path, sandy_bridge):
    native, emulated = both(tmp_path, sandy_bridge, portable=True)
    assert native.mode.complete and emulated.mode.complete
    assert emulated.table() == native.table()                            # every digit, every fingerprint
    assert [run.fingerprint for run in emulated.runs] == [run.fingerprint for run in native.runs]  # all 128 bits
    assert [run.val_loss for run in emulated.runs] == [run.val_loss for run in native.runs]


@pytest.mark.emulated
def test_twin_native_demo_table_differs_under_an_emulated_sandy_bridge(tmp_path, sandy_bridge):
    """Without the pins the same walk on the floor gives other digits: the test above can fail."""
    native, emulated = both(tmp_path, sandy_bridge, portable=False)
    assert native.mode.report is None and emulated.mode.report is None
    assert [run.fingerprint for run in emulated.runs] != [run.fingerprint for run in native.runs]
