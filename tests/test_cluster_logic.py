"""The decisions behind ``--on`` that need no cluster: what differs, what is refused."""
import sys

import pytest

from jupyter_repro.errors import ReproError
from jupyter_repro.run.cluster import connect
from jupyter_repro.run.cluster_trials import arithmetic_differs
from jupyter_repro.run.probe import MISSING, differences, probe
from jupyter_repro.seeding.portable import PINS

NOTEBOOK = {"python": "3.11.7", "keras": "3.15.1", "tensorflow": "2.21.0", "helpers": "1.0"}


def test_equal_versions_differ_in_nothing():
    assert differences(NOTEBOOK, dict(NOTEBOOK)) == ""


def test_another_keras_and_a_missing_package_are_named_in_one_line():
    worker = dict(NOTEBOOK, keras="3.14.0", helpers=MISSING)
    assert differences(NOTEBOOK, worker) == "keras 3.14.0 (notebook 3.15.1); missing helpers"


def test_probe_reads_versions_without_importing():
    before = set(sys.modules)
    found = probe(["no_such_package_here"])
    assert found["no_such_package_here"] == MISSING and found["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "tensorflow" not in set(sys.modules) - before


FACTS = {"cpu": "GenuineIntel Xeon A", "cpu isa": "AVX AVX2 AVX512F", "onednn isa": "AVX512_CORE",
         "threads": "defaults", "pins": "none"}


def test_other_cpu_is_named_without_the_portable_mode():
    worker = dict(FACTS, cpu="AuthenticAMD EPYC", **{"cpu isa": "AVX AVX2", "onednn isa": "AVX2"})
    assert arithmetic_differs(FACTS, worker).startswith("cpu AuthenticAMD EPYC (notebook GenuineIntel Xeon A)")
    assert arithmetic_differs(FACTS, dict(FACTS)) == ""


def test_portable_pins_on_both_sides_leave_the_cpu_out_but_not_the_threads():
    pins = ", ".join(f"{name}={value}" for name, value in PINS.items())
    notebook = dict(FACTS, pins=pins)
    worker = dict(notebook, cpu="AuthenticAMD EPYC", **{"cpu isa": "AVX AVX2", "onednn isa": "AVX (capped)"})
    assert arithmetic_differs(notebook, worker) == ""
    assert arithmetic_differs(notebook, dict(worker, threads="OMP_NUM_THREADS=1")) == \
        "threads OMP_NUM_THREADS=1 (notebook defaults)"


def test_without_distributed_one_line_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    with pytest.raises(ReproError, match=r"need Dask distributed: pip install 'jupyter-repro\[dask\]'"):
        connect("local")


@pytest.mark.parametrize("where", ["", 42, "  "])
def test_a_bad_address_is_refused(where):
    pytest.importorskip("distributed", reason="Dask distributed is not installed")
    with pytest.raises(ReproError, match="--on takes 'local' or a scheduler address"):
        connect(where)


def test_magics_in_the_cell_are_refused_before_anything_is_sent():
    from jupyter_repro.run.shipment import pack

    with pytest.raises(ReproError, match="no IPython: move the magics and shell commands"):
        pack(None, None, None, "get_ipython().run_line_magic('time', '')", {})


def test_on_without_trials_is_a_usage_error(ip):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="--on goes with --trials N or --seeds 1,2,3"):
        ip.run_cell_magic("repro_fit", "--on local", "pass")


def test_cluster_is_a_configurable_option(ip):
    magics = ip.magics_manager.registry["ReproMagics"]
    assert magics.cluster == "" and "c.ReproMagics.cluster" in sys.modules["jupyter_repro.magics"].__doc__


def test_tensorflow_pools_count_by_the_threads_in_force():
    """The notebook's default pool on 2 CPUs is the 2 threads a 4-CPU worker is pinned to;
    a worker running 1 thread differs."""
    notebook = dict(FACTS, threads="TensorFlow intra 0 inter 0 (0: default)")
    pinned = dict(FACTS, threads="TensorFlow intra 2 inter 0 (0: default)")
    assert arithmetic_differs(notebook, pinned, {"intra": 0, "cpus": 2}, {"intra": 2, "cpus": 4}) == ""
    assert arithmetic_differs(notebook, pinned, {"intra": 0, "cpus": 2}, {"intra": 1, "cpus": 4}) == \
        "tensorflow intra-op threads 1 (notebook 2)"


REFUSED = [("--cache --verify", "model.fit(X, y, epochs=1, verbose=0)",
            r"^trials on a cluster do not take --verify \(.*\): drop --on to verify in the kernel, or drop --verify$"),
           ("--batches", "model.fit(X, y, epochs=1, verbose=0)",
            r"^trials on a cluster do not take --batches \(.*\): drop --on .*, or drop --batches$"),
           ("", "%time model.fit(X, y, epochs=1, verbose=0)",
            r"^trials on a cluster run the cell's Python on the workers, where there is no IPython: move the magics")]


@pytest.mark.parametrize("options, body, message", REFUSED, ids=["verify", "batches", "magics"])
def test_what_a_cluster_cannot_run_is_refused_in_one_line_before_anything_starts(ip, options, body, message):
    """--verify, --batches and magics in the cell with --on: a one-line UsageError that says
    what to do; no cluster started, no run recorded, the model's variables and the
    notebook's names as they were."""
    pytest.importorskip("distributed", reason="Dask distributed is not installed")
    import hashlib

    from IPython.core.error import UsageError

    from jupyter_repro.run import cluster

    ip.run_cell("import numpy as np, keras\nX = np.ones((32, 4), 'float32'); y = X.sum(1)\n"
                "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])\n"
                "model.compile(optimizer='adam', loss='mse')")
    ip.run_line_magic("repro_seed", "42")
    ip.run_line_magic("repro_snapshot", "model")
    ip.run_cell_magic("repro_fit", "model", "model.fit(X, y, epochs=1, verbose=0)")
    state = lambda: hashlib.sha256(b"".join(v.numpy().tobytes() for v in ip.user_ns["model"].variables)).digest()  # noqa: E731
    session = ip.magics_manager.registry["ReproMagics"].session
    before, names, records = state(), set(ip.user_ns), len(session.ledger.records())
    with pytest.raises(UsageError, match=message) as refused:
        ip.run_cell_magic("repro_fit", f"model --trials 2 --on local {options}", body)
    assert "\n" not in str(refused.value)
    assert not cluster._LOCAL and not cluster._CLIENTS                   # nothing started, nothing reached
    assert state() == before and set(ip.user_ns) == names and len(session.ledger.records()) == records
    assert state() != (ip.run_cell_magic("repro_fit", "model --seed 7", "model.fit(X, y, epochs=1, verbose=0)")
                       or state())                                      # the twin: a run does change it


def test_either_floor_on_both_sides_leaves_the_cpu_out_but_two_floors_are_named():
    from jupyter_repro.seeding.portable import FLOOR_PINS

    def at(floor):
        return dict(FACTS, pins=", ".join(f"{name}={value}" for name, value in FLOOR_PINS[floor].pins.items()))
    worker = {"cpu": "AuthenticAMD EPYC", "cpu isa": "AVX AVX2", "onednn isa": "AVX2"}
    assert arithmetic_differs(at("avx2"), dict(at("avx2"), **worker)) == ""
    assert arithmetic_differs(at("avx"), dict(at("avx"), **worker)) == ""
    mixed = arithmetic_differs(at("avx2"), dict(at("avx"), **worker))   # the twin: two floors, other bits
    assert mixed.startswith("cpu AuthenticAMD EPYC") and "pins " in mixed
