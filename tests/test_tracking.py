"""MLflow tracking (``ReproMagics.mlflow``, ``tracking.MlflowTracker``) against a real
SQLite tracking store in a temporary folder, found through ``MLFLOW_TRACKING_URI`` as
MLflow finds it; and the refusal when MLflow is not installed."""
import logging
import sys

import pytest
from IPython.core.error import UsageError
from traitlets.config import Config

from conftest import make_shell
from kernel import Kernel

MODEL = '''
import numpy as np, keras
rng = np.random.default_rng(0)
X = rng.normal(size=(32, 4)).astype("float32"); y = X.sum(1)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="relu"),
                          keras.layers.Dropout(0.2), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
'''
FIT = "%%repro_fit model\nhistory = model.fit(X * SCALE, y, epochs=2, batch_size=8, verbose=0)"


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # anything MLflow writes beside its store stays in the test's folder
    return uri


def runs(uri):
    """Every run in the store, oldest first."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    return sorted(found, key=lambda run: run.info.start_time)


def magics(shell):
    return shell.magics_manager.registry["ReproMagics"]


@pytest.fixture
def tracked(ip, tracking_uri):
    ip.run_cell("%repro_seed 42")
    ip.run_cell(MODEL)
    ip.run_cell("%repro_snapshot model")
    ip.run_line_magic("config", "ReproMagics.mlflow = True")
    assert magics(ip).mlflow is True
    return ip


def test_trials_give_one_parent_and_a_child_per_seed(tracked, tracking_uri):
    tracked.run_cell("SCALE = 1.0")
    frame = tracked.run_cell(FIT.replace("model\n", "model --trials 3\n")).result
    found = runs(tracking_uri)
    parents = [run for run in found if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in found if "mlflow.parentRunId" in run.data.tags]
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parent.info.run_id}
    assert sorted(run.data.params["seed"] for run in children) == ["42", "43", "44"]
    assert parent.data.params["seeds"] == "42,43,44"
    assert parent.data.metrics["loss.mean"] == pytest.approx(frame.loc["mean", "loss"])


def test_a_failed_fit_cell_ends_its_run_as_failed(tracked, tracking_uri):
    tracked.run_cell("SCALE = 1.0")
    with pytest.raises(UsageError, match="the fit cell did not finish"):
        tracked.run_cell(FIT + "\n1 / 0")
    (run,) = runs(tracking_uri)
    assert run.info.status == "FAILED" and "repro.verdict" not in run.data.tags
    import mlflow

    assert mlflow.active_run() is None
    tracked.run_line_magic("config", "ReproMagics.mlflow = False")
    assert not magics(tracked).session.listeners
    tracked.run_cell(FIT)
    assert len(runs(tracking_uri)) == 1                  # off: nothing more logged


def test_autolog_logs_into_the_fit_run_not_a_second_one(tracked, tracking_uri):
    import mlflow

    mlflow.keras.autolog(log_models=False, log_datasets=False, silent=True)
    try:
        tracked.run_cell("SCALE = 1.0")
        tracked.run_cell(FIT)
        tracked.run_cell(FIT)
    finally:
        mlflow.keras.autolog(disable=True)
    found = runs(tracking_uri)
    assert len(found) == 2  # one per fit
    run = found[1]
    assert run.data.tags["repro.verdict"] == "identical to run 1"
    assert run.data.params["epochs"] == "2"          # logged by autolog, in this run
    assert run.data.params["fit.epochs"] == "2"      # and ours beside it
    history = mlflow.MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == [0, 1]  # autolog's, not logged a second time
    # the twin: autolog was on; a plain fit outside %%repro_fit gets a run of autolog's own
    mlflow.keras.autolog(log_models=False, log_datasets=False, silent=True)
    try:
        tracked.run_cell("model.fit(X, y, epochs=1, verbose=0)")
    finally:
        mlflow.keras.autolog(disable=True)
    plain = runs(tracking_uri)[2]
    assert "repro.verdict" not in plain.data.tags and plain.data.params["epochs"] == "1"


def test_script_session_with_a_tracker(tmp_path, tracking_uri):
    import keras
    import numpy as np

    from jupyter_repro import Session
    from jupyter_repro.tracking import MlflowTracker

    session = Session(seed=3, store=str(tmp_path / ".repro"), listeners=[MlflowTracker()])
    try:
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        session.snapshot(model)
        x, y = np.ones((4, 2), "float32"), np.ones((4, 1), "float32")
        session.fit(model, lambda: model.fit(x, y, epochs=1, verbose=0))
    finally:
        session.seeder.close()  # its import hook (for the backends not imported) goes with it
    (run,) = runs(tracking_uri)
    assert run.data.tags["repro.verdict"] == "first" and run.data.params["seed"] == "3"


@pytest.fixture
def without_mlflow(monkeypatch):
    """MLflow made impossible to import, as where the extra is not installed."""
    for name in [n for n in sys.modules if n == "mlflow" or n.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)


def test_option_refused_without_mlflow(ip, without_mlflow, caplog):
    with caplog.at_level(logging.ERROR):
        ip.run_line_magic("config", "ReproMagics.mlflow = True")   # %config prints the error itself
    assert [r.getMessage() for r in caplog.records] == ["MLflow is not installed: pip install 'jupyter-repro[mlflow]'"]
    assert magics(ip).mlflow is False and magics(ip).session.listeners == []


def test_option_refused_in_a_real_kernel_in_one_line():
    with Kernel() as kernel:
        kernel.run("import sys\nsys.modules['mlflow'] = None  # as where the extra is not installed\n"
                   "%load_ext jupyter_repro")
        streams = []
        kernel.client.execute_interactive(
            "%config ReproMagics.mlflow = True", timeout=120,
            output_hook=lambda msg: streams.append(msg["content"]) if msg["msg_type"] == "stream" else None)
        assert streams == [{"name": "stderr",
                            "text": "ERROR:root:MLflow is not installed: pip install 'jupyter-repro[mlflow]'\n"}]
        assert kernel.value("get_ipython().magics_manager.registry['ReproMagics'].mlflow") is False


def test_profile_setting_refused_without_mlflow(without_mlflow):
    config = Config()
    config.ReproMagics.mlflow = True
    shell = make_shell(config)
    with pytest.raises(UsageError, match=r"^jupyter_repro not loaded: MLflow is not installed: "
                                         r"pip install 'jupyter-repro\[mlflow\]'$"):
        shell.run_line_magic("load_ext", "jupyter_repro")
    assert shell.find_cell_magic("repro_fit") is None
    assert not any(type(c).__name__ == "ReproMagics" for c in shell.configurables)


def test_a_b_a_in_a_real_kernel_gives_three_runs_the_last_identical_to_the_first(tmp_path):
    """The profile line (``--ReproMagics.mlflow=True``) in a fresh kernel; the store is
    found through MLFLOW_TRACKING_URI in the kernel's environment, as MLflow finds it."""
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with Kernel(env={"MLFLOW_TRACKING_URI": uri, "KERAS_BACKEND": "tensorflow"}, cwd=str(tmp_path),
                extra_arguments=["--ext=jupyter_repro", "--ReproMagics.seed=42", "--ReproMagics.mlflow=True"]) as kernel:
        kernel.run(MODEL + "\n%repro_snapshot model")
        for scale in (1.0, 2.0, 1.0):
            kernel.run(f"SCALE = {scale}")
            kernel.run(FIT)
        ledger = kernel.value("[(r['result'], r['history']['loss']) for r in "
                              "get_ipython().magics_manager.registry['ReproMagics'].session.ledger.records()]")
    first, other, again = found = runs(uri)
    tags = [run.data.tags for run in found]
    assert [t["repro.verdict"] for t in tags] == ["first", "first", "identical to run 1"]
    assert tags[2]["repro.same_as"] == first.info.run_id and tags[2]["repro.run"] == "3"
    assert "run #3: same inputs as run #1" in tags[2]["repro.verdict.detail"]
    assert [t["repro.result"] for t in tags] == [result for result, _ in ledger]
    # the twin: another input gives other bytes, so "identical" is a comparison that can fail
    assert tags[0]["repro.result"] == tags[2]["repro.result"] != tags[1]["repro.result"]
    assert tags[0]["repro.input_key"] == tags[2]["repro.input_key"] != tags[1]["repro.input_key"]
    assert tags[0]["repro.snapshot"] == tags[1]["repro.snapshot"]
    assert tags[0]["repro.env.keras backend"] == "tensorflow" and "repro.env.numpy" in tags[0]
    params = again.data.params
    assert (params["seed"], params["fit.epochs"], params["fit.batch_size"]) == ("42", "2", "8")
    assert (params["compile.loss"], params["optimizer"]) == ("mse", "Adam")
    assert float(params["optimizer.learning_rate"]) == pytest.approx(0.01)
    for run, (_, losses) in zip(found, ledger):   # every epoch, the ledger's values exactly
        history = MlflowClient(uri).get_metric_history(run.info.run_id, "loss")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == losses and len(losses) == 2
    assert all(run.info.status == "FINISHED" for run in found)
