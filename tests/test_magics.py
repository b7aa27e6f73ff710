"""Fast in-process tests of the magics: errors, config, load/unload."""
import re
import sys

import pytest
from IPython.core.error import UsageError
from traitlets import TraitError
from traitlets.config import Config

from conftest import make_shell
from jupyter_repro.seeding import import_hook

MODEL = '''
import numpy as np, keras
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dropout(0.5),
                          keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
X = np.ones((8, 4), "float32"); y = np.ones((8, 1), "float32")
'''


def magics(shell):
    return shell.magics_manager.registry["ReproMagics"]


def fingerprint(shell):
    return shell.run_cell("from jupyter_repro import model_fingerprint\nmodel_fingerprint(model)").result


@pytest.fixture
def seeded(ip):
    ip.run_cell("%repro_seed 42")
    ip.run_cell(MODEL)
    ip.run_cell("%repro_snapshot model")
    return ip


def namespace_view(shell):
    return {k: id(v) for k, v in shell.user_ns.items() if not k.startswith("_")}


def assert_untouched(shell, run, match):
    """``run`` raises UsageError matching ``match`` and changes neither model nor namespace."""
    before_state, before_ns = fingerprint(shell), namespace_view(shell)
    with pytest.raises(UsageError, match=match):
        run()
    assert fingerprint(shell) == before_state
    assert namespace_view(shell) == before_ns
    assert "ran" not in shell.user_ns


def test_fit_without_snapshot(ip):
    ip.run_cell("%repro_seed 1")
    ip.run_cell(MODEL)
    assert_untouched(ip, lambda: ip.run_cell("%%repro_fit model\nran = True"),
                     "no snapshot registered: run %repro_snapshot MODEL")


def test_snapshot_of_undefined_name(ip):
    with pytest.raises(UsageError, match="name 'nope' is not defined"):
        ip.run_cell("%repro_snapshot nope")
    assert magics(ip).snapshots == {}


def test_snapshot_of_something_not_a_model(ip):
    ip.run_cell("import keras\nmodel = [1, 2]")
    with pytest.raises(UsageError, match="'model' is not a Keras model .it is a list."):
        ip.run_cell("%repro_snapshot model")
    assert ip.user_ns["model"] == [1, 2]


def test_snapshot_of_uncompiled_model(ip):
    ip.run_cell("import keras\nmodel = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])")
    with pytest.raises(UsageError, match=r"is not compiled: call 'model'.compile\(...\) first"):
        ip.run_cell("%repro_snapshot model")
    assert not ip.user_ns["model"].compiled


def test_snapshot_of_unbuilt_model(ip):
    """Unbuilt and not compiled: the advice is to compile (the README's order); compiled,
    the snapshot is registered and taken at the first fit's build (#31)."""
    ip.run_cell("import keras\nmodel = keras.Sequential([keras.layers.Dense(1)])")
    with pytest.raises(UsageError, match="is not compiled"):
        ip.run_cell("%repro_snapshot model")
    ip.run_cell("model.compile(optimizer='adam', loss='mse')")
    shown = str(ip.run_cell("%repro_snapshot model").result)
    assert "not built yet" in shown and not ip.user_ns["model"].variables


def test_fit_when_model_name_now_holds_something_else(seeded):
    seeded.run_cell("saved = model\nmodel = 'a string'")
    with pytest.raises(UsageError, match="not a Keras model"):
        seeded.run_cell("%%repro_fit model\nran = True")
    assert seeded.user_ns["model"] == "a string" and "ran" not in seeded.user_ns


def test_fit_after_architecture_changed(seeded):
    seeded.run_cell("model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5), "
                    "keras.layers.Dropout(0.5), keras.layers.Dense(1)])\nmodel.compile('adam', 'mse')")
    optimizer = seeded.user_ns["model"].optimizer
    assert_untouched(
        seeded, lambda: seeded.run_cell("%%repro_fit model\nran = True"),
        r"variable #0 '.*dense.*/kernel' is \(4, 5\) float32 in the model but \(4, 3\) float32 in "
        r"snapshot 'model'")
    assert seeded.user_ns["model"].optimizer is optimizer     # not recompiled


def test_fit_after_layer_added(seeded):
    seeded.run_cell("model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), "
                    "keras.layers.Dropout(0.5), keras.layers.Dense(1), keras.layers.Dense(1)])\n"
                    "model.compile('adam', 'mse')")
    assert_untouched(seeded, lambda: seeded.run_cell("%%repro_fit model\nran = True"),
                     "the model has 7 variables but snapshot 'model' has 5 .first unmatched: '.*dense.*/kernel'.")


@pytest.mark.parametrize("line, match", [
    ("%repro_seed -1", "seed must be between 0 and"),
    ("%repro_seed 4294967296", "seed must be between 0 and"),
    ("%repro_seed abc", "invalid int value: 'abc'"),
    ("%repro_seed 1 --fast", "unrecognized arguments: --fast"),
])
def test_bad_seed_changes_nothing(seeded, line, match):
    assert_untouched(seeded, lambda: seeded.run_cell(line), match)
    assert magics(seeded).seeder.seed == 42 and magics(seeded).seed == 42


@pytest.mark.parametrize("line, match", [
    ("%%repro_fit model --seed -3", "seed must be between 0 and"),
    ("%%repro_fit model --seed x", "invalid int value: 'x'"),
    ("%%repro_fit model --epochs 3", "unrecognized arguments: --epochs 3"),
    ("%%repro_fit other", "no snapshot for 'other'"),
])
def test_bad_fit_options_change_nothing(seeded, line, match):
    assert_untouched(seeded, lambda: seeded.run_cell(line + "\nran = True"), match)


def test_fit_without_any_seed(ip):
    ip.run_cell(MODEL)
    ip.run_cell("%repro_snapshot model")
    assert_untouched(ip, lambda: ip.run_cell("%%repro_fit\nran = True"), "no seed: run %repro_seed 42")


def test_config_seed_is_validated(ip):
    with pytest.raises(TraitError, match="seed must be between"):
        magics(ip).seed = -5
    assert magics(ip).seed is None


def test_fit_restores_and_reports(seeded):
    snapshot = magics(seeded).snapshots["model"]
    reports = [seeded.run_cell("%%repro_fit\nh = model.fit(X, y, epochs=2, verbose=0)").result
               for _ in range(2)]
    assert reports[0].fingerprint == reports[1].fingerprint != snapshot.fingerprint
    assert reports[0].snapshot_fingerprint == snapshot.fingerprint and reports[0].success
    assert "repro_fit done: model, seed 42" in str(reports[0])


def test_fit_with_explicit_seed_differs_from_session_seed(seeded):
    cell = "\nh = model.fit(np.arange(32.).reshape(8, 4), y, epochs=2, batch_size=2, verbose=0)"
    session = seeded.run_cell("%%repro_fit model" + cell).result.fingerprint
    other = seeded.run_cell("%%repro_fit model --seed 7" + cell).result.fingerprint
    assert session != other


def test_fit_cell_keeps_cell_syntax_and_display(seeded, capsys):
    """The body is compiled and run by the magic (not a nested run_cell), yet magics in it
    work and its last expression is displayed, as in any cell."""
    seeded.run_cell("%%repro_fit\n%time h = model.fit(X, y, epochs=1, verbose=0)\nlen(h.history['loss']) * 1234567")
    out = capsys.readouterr().out
    assert "Wall time" in out and "1234567" in out
    seeded.run_cell("%%repro_fit\nh = model.fit(X, y, epochs=1, verbose=0)\nlen(h.history['loss']) * 7654321;")
    assert "7654321" not in capsys.readouterr().out          # a trailing ';' still hides it


def test_error_in_fit_cell_is_shown_then_reported(seeded, capsys):
    with pytest.raises(UsageError, match=r"the fit cell did not finish \(ZeroDivisionError\); run it again"):
        seeded.run_cell("%%repro_fit\nh = model.fit(X, y, epochs=1, verbose=0)\nboom = 1 / 0")
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)   # without the colours
    assert "ZeroDivisionError" in out and "----> 3 boom = 1 / 0" in out   # its line in the cell, with its source
    assert "cell.py" not in out                                   # not the magic's own frames
    assert "h" in seeded.user_ns and "boom" not in seeded.user_ns


def test_fit_cell_that_does_not_compile_changes_nothing(seeded):
    seeded.run_cell("%%repro_fit\nh = model.fit(X, y, epochs=2, verbose=0)")   # model now differs from its snapshot
    assert_untouched(seeded, lambda: seeded.run_cell("%%repro_fit\nran = True\nh = model.fit(X, y,"),
                     r"the fit cell does not compile \(SyntaxError\); nothing was run")


def test_fit_cell_with_top_level_await_changes_nothing(seeded):
    seeded.run_cell("%%repro_fit\nh = model.fit(X, y, epochs=2, verbose=0)")
    assert_untouched(seeded, lambda: seeded.run_cell("%%repro_fit\nimport asyncio\nawait asyncio.sleep(0)\nran = True"),
                     "cannot use top-level await")


def test_config_seeds_at_load():
    config = Config()
    config.ReproMagics.seed = 7
    config.ReproMagics.reseed_cells = False
    shell = make_shell(config)
    shell.run_line_magic("load_ext", "jupyter_repro")
    try:
        assert magics(shell).seeder.seed == 7
        assert magics(shell).seeder.reseed_cells is False
        shell.run_line_magic("config", "ReproMagics.seed = 9")
        assert magics(shell).seeder.seed == 9
    finally:
        shell.run_line_magic("unload_ext", "jupyter_repro")


def test_load_use_unload_removes_everything(ip):
    repro = magics(ip)
    ip.run_cell("%repro_seed 3")
    assert repro.pre_run_cell in ip.events.callbacks["pre_run_cell"]
    ip.run_line_magic("unload_ext", "jupyter_repro")
    assert repro.pre_run_cell not in ip.events.callbacks["pre_run_cell"]
    assert "ReproMagics" not in ip.magics_manager.registry
    assert repro not in ip.configurables
    for name in ("repro_seed", "repro_snapshot"):
        assert ip.find_line_magic(name) is None
    assert ip.find_cell_magic("repro_fit") is None
    assert not any(isinstance(f, import_hook.ImportHook) for f in sys.meta_path)
    ip.run_line_magic("load_ext", "jupyter_repro")  # the fixture unloads again
    assert ip.find_cell_magic("repro_fit") is not None


def test_seed_report_is_rich(ip):
    report = ip.run_cell("%repro_seed 5").result
    assert report.seed == 5
    assert "<table>" in report._repr_html_() and "hash() seed" in str(report)


def test_history_and_env(seeded):
    cell = "%%repro_fit\nh = model.fit(X, y, epochs=1, verbose=0)"
    first, second = (seeded.run_cell(cell).result for _ in range(2))
    assert first.verdict.status == "first" and second.verdict.status == "identical"
    assert f"run #{second.run}: same inputs as run #{first.run}" in str(second)
    frame = seeded.run_cell("%repro_history --model model --last 1").result
    assert list(frame.index) == [second.run] and frame.iloc[0]["verdict"] == "identical"
    assert "loss" in frame.columns
    env = seeded.run_cell("%repro_env").result
    assert env["keras backend"] == "tensorflow" and env["op determinism"] == "on"
    with pytest.raises(UsageError, match="%repro_env takes no arguments"):
        seeded.run_cell("%repro_env --all")


def test_history_without_a_store(seeded):
    seeded.run_line_magic("config", "ReproMagics.store = ''")
    with pytest.raises(UsageError, match="no ledger: ReproMagics.store is empty"):
        seeded.run_cell("%repro_history")
    report = seeded.run_cell("%%repro_fit\nh = model.fit(X, y, epochs=1, verbose=0)").result
    assert report.verdict is None and report.fingerprint


def test_a_different_initial_state_is_kept_beside_the_saved_one(ip):
    import glob
    import os

    ip.run_cell("%repro_seed 3")
    ip.run_cell(MODEL)
    first = ip.run_cell("%repro_snapshot model").result
    assert first.status.startswith("saved to ")
    assert "matches the snapshot saved under 'model'" in ip.run_cell("%repro_snapshot model").result.status
    ip.run_cell("model.layers[0].kernel.assign(model.layers[0].kernel * 2)")
    second = ip.run_cell("%repro_snapshot model").result
    assert second.status.startswith(f"⚠ differs from the snapshot saved earlier under 'model' ({first.fingerprint[:12]})")
    assert "both are kept" in second.status
    store = magics(ip).store
    assert len(glob.glob(os.path.join(store, "snapshots", "model-*.safetensors"))) == 2
