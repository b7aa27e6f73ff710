"""Multi-process JAX: docs/examples/jax_multi_process.py run by two processes on 127.0.0.1.

Two processes stand in for two hosts (JAX's CPU collectives, gloo, between them). The
back-and-forth A, B, A is run twice, each time by two fresh processes: every process
prints the same fingerprints (XXH3-128 of every variable), A twice, and the repeat prints
them again; each process's own ledger says so too. The twin runs the usual recipe the
same way and differs at the revisit. Every socket is on 127.0.0.1, on ports chosen now;
every process is killed at the deadline.
"""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from jupyter_repro.run.ledger import Ledger
from kernel import needs

pytestmark = needs("jax")  # multi-process keras.distribution runs on JAX

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "docs", "examples", "jax_multi_process.py")
DEADLINE = 480  # seconds for all launches together; a 2-core CI machine needs about a minute


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(folder, recipe, processes=2):
    """Start every process of one run of the example, in ``folder``; its output goes to files."""
    port = free_port()
    coordinator = f"127.0.0.1:{port}"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               JAX_COORDINATOR_BIND_ADDRESS=coordinator, PYTHONPATH=os.pathsep.join(
                   filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    os.makedirs(folder, exist_ok=True)
    started = []
    for index in range(processes):
        path = os.path.join(folder, f"{recipe}-{index}.log")
        with open(path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, EXAMPLE, "--coordinator", coordinator, "--num-processes", str(processes),
                 "--process-id", str(index), "--recipe", recipe],
                cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        process.log_path = path
        started.append(process)
    return started


def wait_all(processes, deadline):
    """Wait for ``processes`` until ``deadline`` (time.monotonic()); kill those still running then."""
    try:
        for process in processes:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        kill(processes)


def kill(processes):
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def succeeded(processes):
    for process in processes:
        with open(process.log_path) as handle:
            tail = handle.read()[-3000:]
        assert process.returncode == 0, f"{process.log_path} ended with {process.returncode} " \
                                        f"(killed at the deadline if negative):\n{tail}"


def lines(folder, recipe, kind, processes=2):
    """``{process: [(setting, value), ...]}`` from the ``kind`` lines each process printed."""
    found = {}
    for index in range(processes):
        with open(os.path.join(folder, f"{recipe}-{index}.log")) as handle:
            text = handle.read()
        found[index] = [tuple(line.split(" ", 3)[2:]) for line in text.splitlines() if line.startswith(kind + " ")]
        assert all(int(line.split(" ", 2)[1]) == index for line in text.splitlines() if line.startswith(kind + " "))
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The example twice (the repeat in the first run's folder, so each process's ledger holds
    both) and the usual recipe beside the first run; two processes each."""
    folders = {name: str(tmp_path_factory.mktemp(name)) for name in ("repro", "plain")}
    deadline = time.monotonic() + DEADLINE
    started = []
    try:
        first = launch(folders["repro"], "repro")
        started += first
        plain = launch(folders["plain"], "plain")
        started += plain
        wait_all(first, deadline)          # the repeat starts from the ledgers the first run left
        succeeded(first)
        first_lines = {kind: lines(folders["repro"], "repro", kind) for kind in ("FINGERPRINT", "VERDICT")}
        repeat = launch(folders["repro"], "repro")
        started += repeat
        wait_all(repeat + plain, deadline)
        succeeded(repeat + plain)
    finally:
        kill(started)                      # whatever failed, no process outlives the fixture
    return {"first": first_lines,
            "repeat": {kind: lines(folders["repro"], "repro", kind) for kind in ("FINGERPRINT", "VERDICT")},
            "plain": lines(folders["plain"], "plain", "FINGERPRINT"), "folder": folders["repro"]}


def test_every_process_and_the_repeat_get_the_same_bytes(runs):
    fingerprints = runs["first"]["FINGERPRINT"]
    assert [setting for setting, _ in fingerprints[0]] == ["A", "B", "A"]
    assert fingerprints[0] == fingerprints[1]                      # both processes: every fit
    (_, a), (_, b), (_, again) = fingerprints[0]
    assert again == a != b                                         # the revisit of A: A's bytes
    assert runs["repeat"]["FINGERPRINT"] == fingerprints           # two fresh processes, again


def test_each_process_records_its_runs_and_compares_like_with_like(runs):
    for index in (0, 1):
        first = [verdict for _, verdict in runs["first"]["VERDICT"][index]]
        assert "run #3: same inputs as run #1" in first[2] and "identical ✓" in first[2]
        repeat = [verdict for _, verdict in runs["repeat"]["VERDICT"][index]]   # the same ledger, runs 4-6
        for verdict, earlier in zip(repeat, ("run #4: same inputs as run #3", "run #5: same inputs as run #2",
                                             "run #6: same inputs as run #4")):
            assert verdict.startswith(earlier) and verdict.endswith("identical ✓"), verdict
        records = Ledger(os.path.join(runs["folder"], ".repro", f"process-{index}")).records()  # environments put back
        assert [r["process"] for r in records] == [index] * 6
        assert {r["env"]["processes"] for r in records} == {"2"}
        assert {r["env"]["keras distribution"] for r in records} == {"DataParallel over 2 devices (mesh batch=2)"}
        assert all("distribution" in r["inputs"] for r in records)


def test_twin_the_usual_recipe_differs_at_the_revisit(runs):
    plain = runs["plain"]
    assert plain[0] == plain[1]                                    # the processes agree with each other...
    (_, a), _, (_, again) = plain[0]
    assert again != a                                              # ...but A twice gives other bytes
