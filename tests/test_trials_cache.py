"""``%%repro_fit --trials/--seeds`` and ``--cache/--verify`` (in-process shell)."""
import pytest
from IPython.core.error import UsageError

from jupyter_repro.run.cache import StateCache

MODEL = '''
import numpy as np, keras
rng = np.random.default_rng(0)
X = rng.normal(size=(64, 4)).astype("float32"); y = X.sum(1)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dropout(0.2), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
trained = []
def count_training(model):
    original = type(model).make_train_function
    object.__setattr__(model, "make_train_function",
                       lambda *a, **k: (trained.append(1), original(model, *a, **k))[1])
count_training(model)
'''
FIT = '''history = model.fit(X, y, epochs=2, batch_size=16, verbose=0{callbacks})
rmse = float(np.sqrt(np.mean((model.predict(X, verbose=0).ravel() - y) ** 2)))'''


@pytest.fixture
def shell(ip, tmp_path):
    ip.run_cell("%repro_seed 42")
    ip.run_cell(MODEL)
    ip.run_cell("%repro_snapshot model")
    return ip


def fit(shell, options="", callbacks=""):
    return shell.run_cell(f"%%repro_fit model {options}\n" + FIT.format(callbacks=callbacks)).result


def state(shell):
    return shell.run_cell("from jupyter_repro import model_fingerprint\n"
                          "(model_fingerprint(model), history.history, rmse, len(trained))").result


def test_trials_table_is_reproducible_and_model_keeps_session_seed_result(shell):
    first = shell.run_cell("%%repro_fit --trials 3 --metric rmse\n" + FIT.format(callbacks="")).result
    assert list(first.index) == [42, 43, 44, "mean", "std", "min", "max"]
    assert list(first.columns) == ["loss", "rmse"]
    assert first.loc[[42, 43, 44], "loss"].nunique() == 3          # different initial states
    after_trials = state(shell)[0]
    again = shell.run_cell("%%repro_fit --trials 3 --metric rmse\n" + FIT.format(callbacks="")).result
    assert first.equals(again)                                      # same table, to the bit
    plain = fit(shell)
    assert plain.fingerprint == after_trials                         # holds the session seed's result
    assert first.loc[42, "loss"] == plain.metrics["loss"]


def test_explicit_seeds(shell):
    table = shell.run_cell("%%repro_fit --seeds 7,42\n" + FIT.format(callbacks="")).result
    assert list(table.index[:2]) == [7, 42]
    assert table.loc["min", "loss"] == table.loc[[7, 42], "loss"].min()


@pytest.mark.parametrize("options, message", [
    ("--trials 0", "--trials must be at least 1"),
    ("--seeds 1,x", "--seeds takes comma-separated integers"),
    ("--seeds 1,1", "--seeds needs distinct integers"),
    ("--trials 2 --seeds 1,2", "give --trials N or --seeds 1,2,3, not both"),
    ("--metric rmse", "--metric goes with --trials N"),
    ("--verify", "--verify goes with --cache"),
])
def test_trial_and_cache_option_errors(shell, options, message):
    with pytest.raises(UsageError, match=message):
        fit(shell, options)
    assert shell.run_cell("len(trained)").result == 0


def test_undefined_metric_is_refused_before_any_trial_trains(shell):
    with pytest.raises(UsageError, match="--metric nope: the cell never sets nope, and the notebook has no nope"):
        shell.run_cell("%%repro_fit --trials 2 --metric nope\n" + FIT.format(callbacks=""))
    assert shell.run_cell("len(trained)").result == 0
    with pytest.raises(UsageError, match="--metric nope: the cell must set nope to a number .it is str."):
        shell.run_cell("%%repro_fit --trials 2 --metric nope\n" + FIT.format(callbacks="") + "\nnope = 'x'")


def test_cache_replays_the_same_variables_history_and_rmse_without_training(shell):
    trained = fit(shell, "--cache")
    assert "no stored result for these inputs yet; trained and stored" in str(trained)
    first = state(shell)
    cached = fit(shell, "--cache")
    replayed = state(shell)
    assert cached.verdict.status == "cached" and f"result from run #{trained.run}" in str(cached)
    assert replayed[:3] == first[:3]                 # variables (hash), History, RMSE
    assert replayed[3] == first[3] == 1              # no second training
    verified = fit(shell, "--cache --verify")
    assert verified.verdict.status == "identical" and state(shell)[3] == 2


def test_runs_ending_with_the_same_weights_replay_their_own_history(shell):
    """Validation data does not change training: A and B end with the same weights, but
    not with the same History. A's revisit must replay A's, not the state B filed last."""
    shell.run_cell("V1 = (X[:16], y[:16])\nV2 = (X[:16] * 3, y[:16] - 5)")
    cell = "%%repro_fit model --cache\nhistory = model.fit(X, y, epochs=2, batch_size=16, verbose=0, validation_data=V)"
    shell.run_cell("V = V1")
    a = shell.run_cell(cell).result
    a_history = shell.user_ns["history"].history
    shell.run_cell("V = V2")
    b = shell.run_cell(cell).result
    assert a.fingerprint == b.fingerprint and shell.user_ns["history"].history != a_history
    shell.run_cell("V = V1")
    again = shell.run_cell(cell).result
    assert again.verdict.status == "cached" and shell.user_ns["history"].history == a_history
    assert again.verdict.earlier["run"] == a.run


def test_cache_corrupted_entry_is_ignored_with_a_warning(shell):
    fit(shell, "--cache")
    cache = StateCache(shell.magics_manager.registry["ReproMagics"].store)
    data = next(cache.store.directory.glob("*.safetensors"))
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 1                                      # one bit of the last tensor's bytes
    data.write_bytes(bytes(raw))
    report = fit(shell, "--cache")
    assert "⚠ cache entry ignored: snapshot file" in str(report) and "does not match its checksum" in str(report)
    assert state(shell)[3] == 2 and report.verdict.status == "identical"


@pytest.mark.parametrize("callback, reason", [
    ("keras.callbacks.ModelCheckpoint(r'{tmp}/m.keras')", "ModelCheckpoint writes checkpoint files"),
    ("keras.callbacks.CSVLogger(r'{tmp}/log.csv')", "CSVLogger writes a CSV log"),
    ("keras.callbacks.BackupAndRestore(r'{tmp}/backup')", "BackupAndRestore writes backups"),
    ("Custom()", "custom callback Custom may have effects a cache cannot replay"),
])
def test_cache_refuses_fits_with_effects(shell, tmp_path, callback, reason):
    shell.run_cell("class Custom(keras.callbacks.Callback):\n    pass")
    callbacks = f", callbacks=[{callback.format(tmp=tmp_path)}]"
    for _ in range(2):
        report = fit(shell, "--cache", callbacks)
        assert f"cache not used: {reason}, which a cache cannot replay; trained instead" in str(report) or \
            f"cache not used: {reason}; trained instead" in str(report)
    assert state(shell)[3] == 2                       # both trained


def test_cache_allows_early_stopping(shell):
    callbacks = ", callbacks=[keras.callbacks.EarlyStopping(monitor='loss', patience=1)]"
    fit(shell, "--cache", callbacks)
    assert fit(shell, "--cache", callbacks).verdict.status == "cached"


def test_eviction_keeps_the_folder_under_its_cap(shell):
    magics = shell.magics_manager.registry["ReproMagics"]
    fit(shell, "--cache")
    size = sum(p.stat().st_size for p in StateCache(magics.store).store.directory.iterdir())
    magics.cache_max_bytes = int(size * 1.5)
    fit(shell, "--cache --seed 1")
    names = sorted(p.suffix for p in StateCache(magics.store).store.directory.iterdir())
    assert names == [".safetensors"]                  # the older state was evicted
    assert fit(shell, "--cache --seed 1").verdict.status == "cached"


def test_cache_needs_a_store(shell):
    shell.run_line_magic("config", "ReproMagics.store = ''")
    with pytest.raises(UsageError, match="--cache needs a store"):
        fit(shell, "--cache")


def test_refusal_names_each_callback_with_effects(tmp_path):
    import keras

    from jupyter_repro.run.cache import refusal

    assert refusal([keras.callbacks.TensorBoard(str(tmp_path))]).startswith("TensorBoard writes TensorBoard logs")
    assert refusal([keras.callbacks.LambdaCallback()]).startswith("LambdaCallback runs arbitrary code")
    assert refusal([keras.callbacks.RemoteMonitor()]).startswith("RemoteMonitor sends logs")
    assert refusal([keras.callbacks.EarlyStopping(), keras.callbacks.ReduceLROnPlateau()]) is None
    assert refusal(None) is None
