"""A team store between real kernels (issue #27): a notebook fitted in CI's kernel (its own key,
as CI keeps it in a secret) replays, bit-identical, in a laptop's kernel (another Jupyter data
dir, another key, another folder) once the laptop's trust file names "ci"; before that, and for
inputs CI never fitted, the laptop trains. One backend (TensorFlow): what is shared is the
stored state, whatever computed it."""
import json
import os

import pytest

from kernel import STATE_HASH, Kernel

pytest.importorskip("cryptography", reason="cryptography is not installed (pip install 'jupyter-repro[team]')")
pytest.importorskip("fsspec", reason="fsspec is not installed (pip install 'jupyter-repro[team]')")

SETUP = STATE_HASH + '''
import numpy as np, keras
rng = np.random.default_rng(0)
X = rng.normal(size=(256, 16)).astype("float32"); y = X.sum(1)
model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
initial = state_hash(model)
'''
FIT = "%%repro_fit model --cache\nhistory = model.fit(X, y, epochs=EPOCHS, batch_size=32, verbose=0)"


def start(folder, data_dir, team, key_file=None):
    """A kernel of its own installation: its data dir (HMAC key), its ed25519 key, its folder."""
    os.makedirs(folder, exist_ok=True)
    kernel = Kernel(env={"KERAS_BACKEND": "tensorflow", "JUPYTER_DATA_DIR": str(data_dir),
                         "JUPYTER_REPRO_KEY_FILE": str(key_file) if key_file else None}, cwd=str(folder))
    kernel.run(f"%load_ext jupyter_repro\n%config ReproMagics.team_store = {team!r}\n%repro_seed 42")
    kernel.run(SETUP)
    kernel.run("%repro_snapshot model")
    return kernel


def fit(kernel, epochs):
    out = kernel.run(f"EPOCHS = {epochs}")
    out = kernel.run(FIT)
    hashes = kernel.value("[state_hash(model), history_hash(history), state_hash(model) != initial]")
    assert hashes[2], "the model holds its fit's result, not the snapshot's state"
    return out, hashes[:2]


def test_ci_fits_a_laptop_trusting_ci_replays_it_bit_identical_and_untrusted_trains(tmp_path):
    team = f"file://{tmp_path / 'shared-drive' / 'repro'}"
    ci_key = tmp_path / "secrets" / "ci.key"
    with start(tmp_path / "ci", tmp_path / "ci-data", team, ci_key) as ci:
        by_ci = {}
        for epochs in (2, 3):
            out, by_ci[epochs] = fit(ci, epochs)
            assert "run #%d: first run with these inputs" % (epochs - 1) in out
            assert "team store: shared with file://" in out, out
        ci_public = ci.value("__import__('jupyter_repro.store.keys', fromlist=['x']).Identity().public")
    laptop = tmp_path / "laptop"
    with start(laptop, tmp_path / "laptop-data", team) as kernel:
        out, untrusted = fit(kernel, 3)                       # no trust file yet: trains, and says why
        assert "run #1: first run with these inputs" in out and "replayed" not in out
        assert "signed by a key not in the trust file" in out, out
        assert untrusted == by_ci[3]                          # the same bits, trained here
        (laptop / "repro-trust.json").write_text(json.dumps({"trusted": {"ci": ci_public}}))
        out, replayed = fit(kernel, 2)
        assert "run #2: replayed — computed by ci on " in out and "(native) ✓" in out, out
        assert replayed == by_ci[2]                           # every variable, and the History, bit-identical
        assert replayed != by_ci[3]                           # the twin: another fit's bits do differ
        history = kernel.run("%repro_history")
        assert "computed by" in history and "ci" in history.splitlines()[-1]


def test_check_with_a_team_store_shares_cis_fits_and_a_trusting_check_replays_them(tmp_path):
    """``jupyter-repro check --team-store``: CI's run shares what its first kernel fits (its second
    kernel replays it, as this installation's); a check under another key that trusts ci replays
    ci's fits in both kernels, and the table names who computed them."""
    import subprocess
    import sys

    import nbformat

    folder = tmp_path / "notebooks"
    folder.mkdir()
    cells = ["%load_ext jupyter_repro\n%repro_seed 5",
             "import numpy as np, keras\nmodel = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), "
             "keras.layers.Dense(1)])\nmodel.compile(keras.optimizers.Adam(0.01), 'mse')",
             "%repro_snapshot model", "X = np.random.normal(size=(64, 3)).astype('float32')\ny = X.sum(1)",
             "%%repro_fit model --cache\nhistory = model.fit(X, y, epochs=2, batch_size=16, verbose=0)"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, folder / "fit.ipynb")
    team = f"file://{tmp_path / 'shared-drive' / 'repro'}"

    def check(key):
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        env.update(JUPYTER_REPRO_KEY_FILE=str(tmp_path / key), TF_CPP_MIN_LOG_LEVEL="3")
        return subprocess.run([sys.executable, "-m", "jupyter_repro.cli", "check", str(folder / "fit.ipynb"),
                               "--against", "kernels", "--team-store", team],
                              capture_output=True, text=True, timeout=900, env=env)

    by_ci = check("ci.key")
    assert by_ci.returncode == 0, by_ci.stdout + by_ci.stderr
    assert "kernel 2: fit 1 replayed — computed by this installation on " in by_ci.stdout, by_ci.stdout
    assert "kernel 1: fit 1 replayed" not in by_ci.stdout
    from jupyter_repro.store.keys import Identity

    (folder / "repro-trust.json").write_text(json.dumps({"trusted": {"ci": Identity(tmp_path / "ci.key").public}}))
    laptop = check("laptop.key")
    assert laptop.returncode == 0, laptop.stdout + laptop.stderr
    for number in (1, 2):
        assert f"kernel {number}: fit 1 replayed — computed by ci on " in laptop.stdout, laptop.stdout
