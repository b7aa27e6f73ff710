"""``jupyter-repro demo``: the notebook's back-and-forth, headless, in a fresh kernel."""
import json
import subprocess
import sys

import nbformat
import pytest

from jupyter_repro.demo import NOTEBOOK, run_demo

CLI = [sys.executable, "-m", "jupyter_repro.cli"]


def demo(*args, env=None):
    return subprocess.run(CLI + ["demo", *args], capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture
def no_cmapss(monkeypatch):
    monkeypatch.delenv("CMAPSS_DIR", raising=False)
    return {k: v for k, v in __import__("os").environ.items() if k != "CMAPSS_DIR"}


def test_demo_on_synthetic_data_reproduces_the_repeated_alpha(tmp_path, no_cmapss):
    done = demo("--epochs", "1", "--alphas", "1.0,0.4,1.0", "--output", str(tmp_path), env=no_cmapss)
    assert done.returncode == 0, done.stderr
    assert "SYNTHETIC fleet (seed 0), not NASA data" in done.stdout
    assert "run 3/3: alpha = 1.0" in done.stdout               # progress
    rows = [line.split() for line in done.stdout.splitlines() if line[:3].strip() in {"1", "2", "3"}]
    assert rows[0][1:5] == rows[2][1:5]                        # alpha, both RMSEs, fingerprint
    assert rows[0][1:5] != rows[1][1:5]
    assert "identical to run 1 ✓" in done.stdout
    executed = nbformat.read(tmp_path / "turbofan_fd001.executed.ipynb", as_version=4)
    records = [json.loads(o["text"].split("@@repro ", 1)[1]) for c in executed.cells
               if "demo-record" in c.metadata.get("tags", []) for o in c.outputs]
    assert records[0] == records[2] and records[0] != records[1]
    assert (tmp_path / "val_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
