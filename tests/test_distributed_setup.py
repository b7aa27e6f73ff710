"""Distributed setups the core refuses or tells apart, in process (fast).

A seed set after ``keras.distribution.initialize()`` (for real, with JAX's distributed
runtime in a one-process subprocess; and through the magic), a snapshot taken with
another process count, ``--cache`` across processes; and the layout as part of a run's
inputs. The multi-process runs themselves are in test_jax_multi_process.py, the
in-kernel layouts in test_keras_distribution.py.
"""
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from IPython.core.error import UsageError

from kernel import requires
from test_magics import MODEL, assert_untouched, magics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def processes(monkeypatch):
    """Pretend this process is one of ``n`` (JAX's process count, as the core reads it)."""
    from jupyter_repro.model import distribution

    def set_count(n):
        monkeypatch.setattr(distribution, "processes", lambda: (n, 0))
    return set_count


SEED_AFTER_INITIALIZE = '''
import os, random, socket
from jupyter_repro import DistributionError, Session

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
os.environ["JAX_COORDINATOR_BIND_ADDRESS"] = f"127.0.0.1:{port}"
early, late = Session(seed=42), Session()
import jax
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=1, process_id=0)
state = random.getstate()
for session, seed in ((late, 42), (early, 7)):
    try:
        session.seed(seed)
    except DistributionError as error:
        print("refused:", error)
print("unchanged:", random.getstate() == state, late.seeder.seed, early.seeder.seed)
early.seed(42)
print("same seed again: accepted")
'''


@requires("jax")  # JAX's distributed runtime
def test_a_seed_after_jax_distributed_initialize_is_refused_and_changes_nothing():
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(SEED_AFTER_INITIALIZE)], capture_output=True,
                          text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    refusals = [line for line in done.stdout.splitlines() if line.startswith("refused:")]
    assert refusals == [
        "refused: seed 42 comes after keras.distribution.initialize(): seed first, before initialize "
        "(Session(seed=...) or %repro_seed at the top, or c.ReproMagics.seed in the profile), so every "
        "process starts from the same seed",
        "refused: seed 7 comes after keras.distribution.initialize(): seed first, before initialize "
        "(Session(seed=...) or %repro_seed at the top, or c.ReproMagics.seed in the profile), so every "
        "process starts from the same seed; this session's seed is 42"]
    assert "unchanged: True None 42" in done.stdout and "same seed again: accepted" in done.stdout


def test_repro_seed_after_initialize_is_a_usage_error(ip, monkeypatch):
    from jupyter_repro.model import distribution

    ip.run_line_magic("repro_seed", "42")
    monkeypatch.setattr(distribution, "jax_distributed", lambda: True)
    state, np_state = random.getstate(), np.random.get_state()
    with pytest.raises(UsageError, match=r"^seed 7 comes after keras.distribution.initialize\(\): seed first"):
        ip.run_line_magic("repro_seed", "7")
    assert random.getstate() == state
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and np.random.get_state()[2] == np_state[2]
    assert magics(ip).seed == 42 and magics(ip).seeder.seed == 42
    ip.run_line_magic("repro_seed", "42")                      # the seed in effect: still accepted


def test_a_snapshot_from_another_process_count_is_refused(ip, processes):
    ip.run_cell("%repro_seed 42")
    ip.run_cell(MODEL)
    ip.run_cell("%repro_snapshot model")
    processes(2)
    assert_untouched(ip, lambda: ip.run_cell("%%repro_fit model\nran = True"),
                     r"^snapshot 'model' was taken in a run of 1 process, this run has 2: .* take the snapshot "
                     "again in this run")


def test_cache_across_processes_is_refused(ip, processes):
    processes(2)
    ip.run_cell("%repro_seed 42")
    ip.run_cell(MODEL)
    ip.run_cell("%repro_snapshot model")
    assert ip.user_ns["model"] is not None and magics(ip).snapshots["model"].processes == 2
    assert_untouched(ip, lambda: ip.run_cell("%%repro_fit --cache model\nran = True"),
                     r"^--cache in a run of 2 processes: every process must train")


def test_the_process_count_is_part_of_the_inputs(ip, processes):
    ip.run_cell("%repro_seed 42")
    ip.run_cell(MODEL)
    ip.run_cell("%repro_snapshot model")
    fit = "%%repro_fit model\nmodel.fit(X, y, epochs=1, verbose=0);"
    alone = ip.run_cell(fit).result
    processes(2)
    ip.run_cell(MODEL)                                         # the same model cell: the same initial state...
    ip.run_cell("%repro_snapshot model")                       # ...taken in a 2-process run
    together = ip.run_cell(fit).result
    assert "distribution" not in alone.inputs.parts                # one device, one process: as before
    assert str(together.verdict) == "run #2: first run with these inputs (changed since run #1: distribution)"
    assert together.verdict.record["env"]["processes"] == "2" and together.verdict.record["process"] == 0


def test_keras_distribution_objects_count_by_their_layout_not_their_process():
    import keras

    from jupyter_repro.values.fingerprint import fingerprint_value

    devices = keras.distribution.list_devices()
    first, second = (keras.distribution.DataParallel(devices=devices) for _ in range(2))
    second._process_id = 1                                     # another process of the same run
    assert fingerprint_value(first) == fingerprint_value(second)
    mesh = keras.distribution.DeviceMesh((1,), ["batch"], devices)
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*kernel"] = (None, "batch")
    assert fingerprint_value(keras.distribution.ModelParallel(layout_map=layout_map)) != fingerprint_value(first)
