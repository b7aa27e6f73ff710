"""``%%repro_fit --trials N --on ...``: seed trials on a real Dask cluster, from a real kernel.

One ``LocalCluster`` of two worker processes on 127.0.0.1 (made here, so a test can watch
and kill its workers) and one kernel serve the whole module. Every "equal" compares result
fingerprints (XXH3-128 of every variable) and a SHA-256 of the model's variables computed
in the kernel independently of the package; the twin shows the plain way of running seed
trials on Dask (seed the worker, rebuild the model, fit) giving other bits, so the
equality tests can fail.
"""
import importlib.util
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from kernel import STATE_HASH, Kernel, KernelError

pytestmark = [pytest.mark.cluster,
              pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                 reason="Dask distributed is not installed (pip install -e '.[dask]')")]

SETUP = STATE_HASH + '''
%load_ext jupyter_repro
%repro_seed 42
import json, numpy as np, keras
from jupyter_repro.run.ledger import Ledger
rng = np.random.default_rng(0)
X = rng.normal(size=(512, 8)).astype("float32"); y = X.sum(1)
EPOCHS = 2
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dropout(0.2), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
%repro_snapshot model
def results(table):
    return {str(seed): run["result"] for seed, run in table.attrs["runs"].items()}
def where(table):
    return {str(seed): run["where"] for seed, run in table.attrs["runs"].items()}
def ledger():
    return [{k: r.get(k) for k in ("run", "seed", "result", "verdict", "same_inputs_as", "worker")}
            for r in Ledger(".repro").records()]
'''
FIT = '''history = model.fit(X, y, epochs=EPOCHS, batch_size=32, verbose=0)
rmse = float(np.sqrt(np.mean((model.predict(X, verbose=0).ravel() - y) ** 2)))'''


def trials(kernel, options: str, body: str = FIT, name: str = "table", model: str = "model") -> str:
    """Run a trials cell; its table as ``name`` in the kernel; what it printed."""
    printed = kernel.run(f"%%repro_fit {model} {options}\n{body}")
    kernel.run(f"{name} = _")
    return printed


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client

    from jupyter_repro.run.cluster import local_cluster

    local = local_cluster(2)
    client = Client(local, set_as_default=False)
    yield client
    client.close()
    local.close()


@pytest.fixture(scope="module")
def kernel(cluster):
    with Kernel() as kernel:
        kernel.run(SETUP)
        kernel.run(f"ADDRESS = {cluster.scheduler.address!r}")
        yield kernel


@pytest.fixture(scope="module")
def here(kernel):
    """The in-kernel trials of seeds 42-44 (``here`` in the kernel, and ``here_hash``: the
    model holding seed 42's result), run once for every test that compares with them."""
    trials(kernel, "--trials 3 --metric rmse", name="here")
    kernel.run("here_hash = state_hash(model)")
    return kernel.value("results(here)")


def bars(displays):
    """(value, max, text/plain) of each progress bar a cell displayed, and the display ids."""
    found, ids = [], set()
    for _, content in displays:
        match = re.search(r'<progress value="(\d+)" max="(\d+)">', content["data"].get("text/html", ""))
        if match:
            found.append((int(match[1]), int(match[2]), content["data"]["text/plain"]))
            ids.add(content["transient"]["display_id"])
    return found, ids


def test_workers_import_this_tree(kernel, cluster):
    """The workers (started by pytest, with its environment) run the code under test."""
    import jupyter_repro

    here = kernel.value("__import__('jupyter_repro').__file__")
    assert set(cluster.run(lambda: __import__("jupyter_repro").__file__).values()) == {here} == {
        jupyter_repro.__file__}


def test_cluster_table_and_every_result_equal_the_in_kernel_trials(kernel, cluster, here):
    printed = trials(kernel, "--trials 3 --metric rmse --on $ADDRESS", name="there")
    assert "3 trials on 2 workers" in printed and "arithmetic differs" not in printed
    assert printed.count("; identical to run #") == 3                 # each against its in-kernel run
    assert kernel.value("here.equals(there)")                      # the same table, every digit
    there = kernel.value("results(there)")
    assert here == there and len(set(here.values())) == 3          # three seeds, three results
    assert set(kernel.value("where(there)").values()) <= set(cluster.scheduler_info()["workers"])
    assert kernel.value("state_hash(model) == here_hash")          # the model holds seed 42's result, as in-kernel
    lines = kernel.value("ledger()")[-3:]
    assert [line["verdict"] for line in lines] == ["identical"] * 3 and all(line["worker"] for line in lines)


def test_the_bar_counts_the_trials_as_the_workers_finish_them(kernel):
    """One display, updated in place: an HTML <progress> (text/plain beside it) that starts
    at 0 of 3 with both workers running and ends at 3 of 3, none running, none failed."""
    kernel.run("%%repro_fit model --trials 3 --on $ADDRESS\n" + FIT)
    found, ids = bars(kernel.displays)
    assert kernel.displays[0][0] == "display_data" and len(ids) == 1
    assert {kind for kind, _ in kernel.displays[1:]} == {"update_display_data"}
    assert found[0][:2] == (0, 3) and "running 2, failed 0" in found[0][2]
    assert [value for value, _, _ in found] == sorted(value for value, _, _ in found)
    assert found[-1][2].endswith("done 3/3, running 0, failed 0")


def test_reversed_order_gives_the_same_results(kernel, here):
    trials(kernel, "--seeds 44,43,42 --metric rmse --on $ADDRESS", name="reversed_")
    assert kernel.value("results(reversed_) == results(here)")
    assert kernel.value("list(reversed_.index[:3])") == [44, 43, 42]
    assert kernel.value("reversed_.loc[[42, 43, 44]].equals(here.loc[[42, 43, 44]])")


def test_listeners_hear_each_trial_as_they_hear_the_kernels(kernel):
    """An experiment tracker (``tracking.py``) hears the same events for trials on a cluster."""
    kernel.run(textwrap.dedent('''
        class Recorder:
            def __init__(self):
                self.events = []
            def trials_started(self, seeds):
                self.events.append("trials_started")
            def run_started(self, report):
                self.events.append("run_started")
            def run_finished(self, report, error):
                self.events.append(f"run_finished {report.parameters.get('fit.epochs')} {error}")
            def trials_finished(self, frame, error):
                self.events.append(f"trials_finished {error}")
        _listeners = get_ipython().magics_manager.registry["ReproMagics"].session.listeners
        recorder = Recorder()
        _listeners.append(recorder)
        '''))
    try:
        trials(kernel, "--trials 2 --on $ADDRESS", name="heard")
    finally:
        kernel.run("_listeners.remove(recorder)")
    assert kernel.value("recorder.events") == ["trials_started", "run_started", "run_finished 2 None",
                                               "run_started", "run_finished 2 None", "trials_finished None"]


def test_twin_the_plain_dask_recipe_gives_other_bits(kernel, here):
    """Seed the worker, rebuild the model from its config, compile, fit: what one would
    write without this package. The notebook's own model (seed 42's trial starts from the
    state the notebook's cells drew, not from seed 42 alone) comes out with other bits."""
    kernel.run(textwrap.dedent('''
        from distributed import Client
        def plain(config, seed, X, y):
            import keras
            from jupyter_repro import model_fingerprint
            keras.utils.set_random_seed(seed)
            m = keras.Sequential.from_config(config)
            m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
            m.fit(X, y, epochs=2, batch_size=32, verbose=0)
            return model_fingerprint(m)
        with Client(ADDRESS, set_as_default=False) as plain_client:
            plain_results = {str(s): plain_client.submit(plain, model.get_config(), s, X, y, pure=False).result()
                             for s in (42, 43, 44)}
        '''))
    assert kernel.value("plain_results")["42"] != here["42"]


def test_twin_workers_that_do_not_reseed_give_other_bits(kernel, cluster, here):
    """The same trials, with the workers' reseeding switched off (Python's ``random``, NumPy,
    TensorFlow, Keras) in fresh worker processes: every result differs, so the equality above
    can fail. (In workers that had run a seeded trial before, seeds 43 and 44 still came out
    equal: TensorFlow keeps its global seed for the life of the process.)"""
    def seeding(off):
        import random
        import types

        from jupyter_repro.seeding import frameworks, seeder

        if off:
            frameworks._SAVED_SEEDERS, frameworks.SEEDERS = frameworks.SEEDERS, ()
            seeder.random = types.SimpleNamespace(seed=lambda seed: None)
        else:
            frameworks.SEEDERS, seeder.random = frameworks._SAVED_SEEDERS, random

    cluster.restart()  # fresh processes: no seed left in TensorFlow by an earlier trial
    cluster.run(seeding, True)
    try:
        trials(kernel, "--trials 3 --metric rmse --on $ADDRESS", name="unseeded")
    finally:
        cluster.run(seeding, False)
    unseeded = kernel.value("results(unseeded)")
    assert [seed for seed in here if unseeded[seed] == here[seed]] == []


def test_twin_a_worker_with_another_thread_count_gives_other_bits(kernel, cluster):
    """A model wide enough that TensorFlow splits its matmuls over the intra-op pool: the
    workers, pinned to the notebook's pool, give its bits; pinned to one thread (as if the
    notebook's pool were that), other bits. (The small model above gives the same bits at
    one thread or two: measured, so it could not show this.)"""
    kernel.run(textwrap.dedent('''
        Xw = rng.normal(size=(4096, 256)).astype("float32"); yw = Xw.sum(1)
        wide = keras.Sequential([keras.Input((256,)), keras.layers.Dense(1024, activation="relu"),
                                 keras.layers.Dense(1024, activation="relu"), keras.layers.Dense(1)])
        wide.compile(optimizer=keras.optimizers.Adam(0.001), loss="mse")
        '''))
    kernel.run("%repro_snapshot wide")
    body = "history = wide.fit(Xw, yw, epochs=1, batch_size=512, verbose=0)"
    trials(kernel, "--trials 2", body, name="wide_here", model="wide")
    trials(kernel, "--trials 2 --on $ADDRESS", body, name="wide_there", model="wide")
    assert kernel.value("results(wide_here) == results(wide_there)")
    cluster.restart()  # fresh TensorFlow pools, so they can be pinned to another size
    kernel.run("import jupyter_repro.run.shipment as _shipment\n_threads = _shipment.threads\n"
               "_shipment.threads = lambda: dict(_threads(), intra=1)")
    try:
        trials(kernel, "--trials 2 --on $ADDRESS", body, name="wide_one_thread", model="wide")
    finally:
        kernel.run("_shipment.threads = _threads")
        cluster.restart()
    here, one = kernel.value("results(wide_here)"), kernel.value("results(wide_one_thread)")
    assert [seed for seed in here if one[seed] == here[seed]] == []


def test_notebook_defined_layer_and_train_step_run_on_the_workers(kernel):
    kernel.run(textwrap.dedent('''
        class Scale(keras.layers.Layer):
            def build(self, shape):
                self.w = self.add_weight(shape=(shape[-1],), initializer="random_normal")
            def call(self, x):
                return x * self.w
        class Clipped(keras.Model):
            def train_step(self, data):
                import tensorflow as tf
                x, y = data
                with tf.GradientTape() as tape:
                    loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
                grads = [tf.clip_by_value(g, -0.5, 0.5) for g in tape.gradient(loss, self.trainable_variables)]
                self.optimizer.apply(grads, self.trainable_variables)
                return {"loss": loss}
        inputs = keras.Input((8,))
        hidden = keras.layers.Dropout(0.1)(Scale()(keras.layers.Dense(16, activation="relu")(inputs)))
        custom = Clipped(inputs, keras.layers.Dense(1)(hidden))
        custom.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        '''))
    kernel.run("%repro_snapshot custom")
    body = "history = custom.fit(X, y, epochs=2, batch_size=64, verbose=0)"
    trials(kernel, "--trials 2", body, name="custom_here", model="custom")
    kernel.run("custom_hash = state_hash(custom)")
    trials(kernel, "--trials 2 --on $ADDRESS", body, name="custom_there", model="custom")
    assert kernel.value("results(custom_here) == results(custom_there)")
    assert kernel.value("custom_here.equals(custom_there) and state_hash(custom) == custom_hash")


def test_cache_stores_cluster_trials_and_revisits_replay_them(kernel):
    """``--cache`` on the cluster stores each trial's state in the notebook's store: a revisit
    in the kernel replays them without training, and so does a revisit on the cluster."""
    kernel.run("EPOCHS = 3")
    trained = trials(kernel, "--trials 2 --metric rmse --cache --on $ADDRESS", name="stored")
    assert "replayed here" not in trained
    kernel.run("stored_hash = state_hash(model)")
    assert [line["verdict"] for line in kernel.value("ledger()")[-2:]] == ["first", "first"]
    trials(kernel, "--trials 2 --metric rmse --cache", name="replayed_here")
    assert [line["verdict"] for line in kernel.value("ledger()")[-2:]] == ["cached", "cached"]
    assert kernel.value("replayed_here.equals(stored) and results(replayed_here) == results(stored)")
    again = trials(kernel, "--trials 2 --metric rmse --cache --on $ADDRESS", name="replayed_there")
    assert again.count("a stored result has these inputs; replayed here") == 2
    assert kernel.value("replayed_there.equals(stored) and results(replayed_there) == results(stored)")
    assert kernel.value("state_hash(model) == stored_hash")
    kernel.run("EPOCHS = 2")


@pytest.mark.parametrize("setup, name, message", [
    ("handle = open(__file__ if '__file__' in dir() else 'x.txt', 'w')", "handle", "notebook value handle"),
    ("stream = (i for i in range(3))", "stream", "notebook value stream is a generator"),
])
def test_unshippable_value_is_refused_before_anything_runs(kernel, setup, name, message):
    kernel.run(setup)
    before = len(kernel.value("ledger()"))
    with pytest.raises(KernelError, match=message) as raised:
        trials(kernel, "--trials 2 --on $ADDRESS", f"_ = {name}\n" + FIT)
    assert raised.value.ename == "UsageError" and len(kernel.value("ledger()")) == before


def test_missing_package_on_the_workers_is_named_before_any_trial(kernel, tmp_path):
    """A module importable in the kernel (its folder put on the kernel's sys.path) that the
    workers cannot import: what a package installed in the notebook's env only looks like."""
    (tmp_path / "only_in_kernel.py").write_text("SCALE = 1.0\n")
    kernel.run(f"import sys\nsys.path.insert(0, {str(tmp_path)!r})")
    before = len(kernel.value("ledger()"))
    with pytest.raises(KernelError, match=r"worker tcp://127.0.0.1:\d+ differs from the notebook: "
                                          r"missing only_in_kernel; its trials would not give"):
        trials(kernel, "--trials 2 --on $ADDRESS", "import only_in_kernel\n" + FIT)
    assert len(kernel.value("ledger()")) == before


def test_variables_the_notebook_changed_are_refused_not_overwritten(kernel):
    """The kernel's session-seed trial keeps what the notebook set since the last run; a
    worker starts it from the snapshot, so the cell is refused instead of giving other bits."""
    kernel.run("saved_bias = model.layers[-1].bias.numpy()\nmodel.layers[-1].bias.assign([5.0])")
    try:
        with pytest.raises(KernelError, match="the notebook changed the model's variables since its last run"):
            trials(kernel, "--trials 2 --on $ADDRESS")
    finally:
        kernel.run("model.layers[-1].bias.assign(saved_bias)")


def test_another_keras_version_on_the_workers_is_named_before_any_trial(kernel, cluster):
    """Simulated: each worker's loaded ``keras.__version__`` set to 3.0.0, which is what the
    version probe reads (the workers import Keras first, as a trial would have)."""
    def keras_version(version=None):
        import keras

        keras._real_version = getattr(keras, "_real_version", keras.__version__)
        keras.__version__ = version or keras._real_version

    before = len(kernel.value("ledger()"))
    cluster.run(keras_version, "3.0.0")
    try:
        with pytest.raises(KernelError, match=r"differs from the notebook: keras 3.0.0 \(notebook 3\.\d+\.\d+"):
            trials(kernel, "--trials 2 --on $ADDRESS")
    finally:
        cluster.run(keras_version)
    assert len(kernel.value("ledger()")) == before


@pytest.fixture(scope="module")
def other_keras():
    """A folder holding another Keras release (``pip install --target DIR keras==X --no-deps``;
    ``.ci/run`` makes one and names it in JUPYTER_REPRO_OTHER_KERAS), and its version."""
    from importlib import metadata

    folder = os.environ.get("JUPYTER_REPRO_OTHER_KERAS", "")
    found = [d for d in metadata.distributions(path=[folder]) if d.metadata["Name"] == "keras"] if folder else []
    if not found:
        pytest.skip("no other Keras release: pip install --target DIR keras==3.14.0 --no-deps, then "
                    "JUPYTER_REPRO_OTHER_KERAS=DIR (as .ci/run does)")
    if found[0].version == metadata.version("keras"):
        pytest.skip(f"JUPYTER_REPRO_OTHER_KERAS holds this environment's Keras ({found[0].version})")
    return folder, found[0].version


def test_a_worker_with_another_keras_installed_is_named_before_any_trial(kernel, other_keras):
    """Real, not patched: a worker started with another Keras release first on its path."""
    from distributed import Client

    from jupyter_repro.run.cluster import local_cluster

    folder, version = other_keras
    path = os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH")) if p)
    before = len(kernel.value("ledger()"))
    with local_cluster(n_workers=0) as other, Client(other, set_as_default=False) as client:
        # a worker process started with the folder on its PYTHONPATH (a nanny's env= is set
        # after the worker's Python has built its path, too late for this)
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", other.scheduler_address,
                                   "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                                  env={**os.environ, "PYTHONPATH": path})
        try:
            client.wait_for_workers(1, timeout=120)
            assert set(client.run(lambda: __import__("importlib.metadata").metadata.version("keras")).values()) \
                == {version}
            kernel.run(f"OTHER = {other.scheduler_address!r}")
            with pytest.raises(KernelError, match=rf"differs from the notebook: keras {re.escape(version)} "
                                                  r"\(notebook 3\.\d+\.\d+\); its trials would not give") as raised:
                trials(kernel, "--trials 2 --on $OTHER")
        finally:
            worker.terminate()
            worker.wait(60)
    assert raised.value.ename == "UsageError" and len(kernel.value("ledger()")) == before


def test_a_trial_that_raises_on_a_worker_stops_the_cell_in_one_line(kernel):
    before = len(kernel.value("ledger()"))
    with pytest.raises(KernelError, match=r"a trial failed on the cluster \(ZeroDivisionError") as raised:
        trials(kernel, "--trials 2 --on $ADDRESS", FIT + "\nbroken = 1 / 0")
    found, _ = bars(kernel.displays)  # the bar's last state: the failure counted, the rest stopped
    assert "failed 1" in found[-1][2] and "stopped: " in found[-1][2]
    assert raised.value.ename == "UsageError" and len(kernel.value("ledger()")) == before


def test_unreachable_cluster_is_one_line(kernel):
    with pytest.raises(KernelError, match="cannot reach the Dask cluster at tcp://127.0.0.1:9") as raised:
        trials(kernel, "--trials 2 --on tcp://127.0.0.1:9")
    assert raised.value.ename == "UsageError"


def _while_a_trial_runs(cluster, action, cell_thread):
    """Call ``action(worker address)`` once a trial is running on a worker."""
    deadline = time.time() + 120
    while time.time() < deadline and cell_thread.is_alive():
        busy = {w: keys for w, keys in cluster.processing().items()
                if any("repro-trial" in str(k) for k in keys)}
        if busy:
            time.sleep(1.0)  # well inside the trial's fit
            return action(next(iter(busy)))
        time.sleep(0.1)
    raise AssertionError("no trial started on the cluster")


def _run_in_thread(kernel, cell):
    outcome = {}

    def run():
        try:
            outcome["out"] = kernel.run(cell, timeout=400)
        except KernelError as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_worker_killed_mid_trial_reruns_elsewhere_and_is_recorded_once(kernel, cluster):
    kernel.run("EPOCHS = 25")
    before = len(kernel.value("ledger()"))
    pids = cluster.run(os.getpid)
    thread, outcome = _run_in_thread(kernel, "%%repro_fit model --seeds 42,43 --on $ADDRESS\n" + FIT)
    killed = _while_a_trial_runs(cluster, lambda address: (os.kill(pids[address], signal.SIGKILL), address)[1],
                                 thread)
    thread.join(400)
    assert "error" not in outcome, outcome.get("error")
    kernel.run("survived = _")
    kernel.run("survived = _")
    cluster.wait_for_workers(2, timeout=120)                        # the nanny started a new one
    lines = kernel.value("ledger()")[before:]
    assert sorted(line["seed"] for line in lines) == [42, 43]         # each once
    assert killed not in {line["worker"] for line in lines}
    trials(kernel, "--seeds 42,43", name="survived_here")
    assert kernel.value("results(survived) == results(survived_here)")
    kernel.run("EPOCHS = 2")


def test_interrupt_cancels_every_trial_and_records_none_half_done(kernel, cluster):
    kernel.run("EPOCHS = 40")
    before = len(kernel.value("ledger()"))
    thread, outcome = _run_in_thread(kernel, "%%repro_fit model --seeds 60,61,62,63 --on $ADDRESS\n" + FIT)
    _while_a_trial_runs(cluster, lambda address: kernel.interrupt(), thread)
    thread.join(120)
    assert outcome["error"].ename == "KeyboardInterrupt"
    recorded = len(kernel.value("ledger()")) - before
    assert recorded == 0 and "stopped: 4 trials cancelled, 0 recorded" in outcome["error"].output
    time.sleep(3)
    assert len(kernel.value("ledger()")) - before == 0
    left = cluster.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks
                                                            if "repro-trial" in str(k)])
    assert left == []
    kernel.run("EPOCHS = 2")


def test_on_local_starts_a_cluster_in_the_kernel_with_its_environment(tmp_path):
    """``--on local``: worker processes started by the kernel, importing the same tree; the
    extension's unload stops them. A kernel of its own, as the unload ends its session."""
    with Kernel(cwd=str(tmp_path)) as kernel:
        kernel.run(SETUP)
        trials(kernel, "--trials 2 --metric rmse", name="local_here")
        trials(kernel, "--trials 2 --metric rmse --on local", name="local_")
        assert kernel.value("results(local_) == results(local_here) and local_.equals(local_here)")
        assert kernel.value("all(w.startswith('tcp://127.0.0.1:') for w in where(local_).values())")
        assert kernel.value("set(__import__('jupyter_repro.run.cluster', fromlist=['x']).local_client()"
                            ".run(lambda: __import__('jupyter_repro').__file__).values()) == "
                            "{__import__('jupyter_repro').__file__}")
        kernel.run("%unload_ext jupyter_repro")
        assert kernel.value("__import__('jupyter_repro.run.cluster', fromlist=['x'])._LOCAL == {}")


def test_the_portable_mode_reaches_the_workers_and_their_bits(tmp_path):
    """A kernel started in the portable mode (the env and flag ``install-kernel --portable``
    writes): workers it starts inherit its pins, report no arithmetic difference, and every
    per-seed result equals the in-kernel trial's. The twin: the same trials without the mode
    give other bits than with it (the pins change the arithmetic here, so the equality can fail)."""
    from jupyter_repro.kernelspec import kernel_spec

    spec = kernel_spec(42, "portable", portable=True)
    with Kernel(env=spec["env"], extra_arguments=["--ReproMagics.portable=True"], cwd=str(tmp_path)) as kernel:
        kernel.run(SETUP)
        assert kernel.value("get_ipython().magics_manager.registry['ReproMagics'].session.portable.complete")
        here = trials(kernel, "--trials 2 --metric rmse", name="portable_here")
        there = trials(kernel, "--trials 2 --metric rmse --on local", name="portable_there")
        assert "arithmetic differs" not in there, there
        assert kernel.value("results(portable_there) == results(portable_here)")
        assert kernel.value("all(w.startswith('tcp://127.0.0.1:') for w in where(portable_there).values())")
        portable = kernel.value("results(portable_here)")
    (tmp_path / "native").mkdir()
    with Kernel(cwd=str(tmp_path / "native")) as native:
        native.run(SETUP)
        trials(native, "--trials 2 --metric rmse", name="native")
        assert native.value("results(native)") != portable, here
