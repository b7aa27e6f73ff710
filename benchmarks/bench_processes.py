"""The determinism cost of a two-process JAX run: the back-and-forth through ``Session.fit``
against the same fits done the usual way, in the same two processes, interleaved.

    .venv/bin/python benchmarks/bench_processes.py [--repeat 5] [--epochs 2]

``main`` starts two processes on 127.0.0.1 (this file, as workers) running the workload of
docs/examples/jax_multi_process.py: ``keras.distribution.initialize()``, DataParallel over
both processes' devices, a small MLP with Dropout, the settings A, B, A. Each process times
the whole back-and-forth three ways, in rounds whose order cycles (``common.interleaved``;
both processes run the same order, as their collectives require): through ``Session.fit``
(restore, fresh optimizer, reseed, inputs, fingerprint, ledger), the usual recipe
(recompile with the same optimizer, ``set_weights``, fit) and the usual recipe again, an
A/A control. Both sides recompile, so both trace and compile the train step every fit.
Process 0's timings are returned as ``common.Comparison`` rows.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXAMPLE = os.path.join(ROOT, "docs", "examples", "jax_multi_process.py")
DEADLINE = 3600  # seconds: every worker is killed by then


def _example():
    spec = importlib.util.spec_from_file_location("jax_multi_process", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker(args) -> None:
    """One process: both recipes on models of its own, timed in interleaved rounds."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from jupyter_repro import Session

    session = Session(seed=42, store=os.path.join(args.store, f"process-{args.process_id}"))  # before Keras
    import jax
    import keras
    import numpy as np

    sys.path.insert(0, HERE)
    from common import interleaved

    example = _example()
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    example.loopback_only(args.coordinator)
    keras.distribution.initialize(args.coordinator, args.num_processes, args.process_id)
    keras.distribution.set_distribution(keras.distribution.DataParallel(auto_shard_dataset=False))

    def build():
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dropout(0.3), keras.layers.Dense(1)])
        optimizer = keras.optimizers.Adam(0.01)
        model.compile(optimizer=optimizer, loss="mse")
        return model, optimizer

    raw = np.random.default_rng(0)
    X = raw.normal(size=(256, 6)).astype("float32")
    y = (X @ raw.normal(size=(6, 1))).astype("float32")
    X, y = X[args.process_id::args.num_processes], y[args.process_id::args.num_processes]
    batch = example.GLOBAL_BATCH // args.num_processes
    sequence = [example.SETTINGS[s] for s in ("A", "B", "A")]

    repro_model, _ = build()
    session.snapshot(repro_model)
    plain_model, plain_optimizer = build()
    initial = plain_model.get_weights()

    def with_session():
        for alpha in sequence:
            session.fit(repro_model, lambda: repro_model.fit(X * alpha, y, batch_size=batch, epochs=args.epochs,
                                                             verbose=0))

    def usual():
        for alpha in sequence:
            plain_model.compile(optimizer=plain_optimizer, loss="mse")
            plain_model.set_weights(initial)
            plain_model.fit(X * alpha, y, batch_size=batch, epochs=args.epochs, verbose=0)

    result = interleaved(f"two-process back-and-forth (A, B, A; {args.epochs} epochs each): Session.fit vs "
                         "the usual recipe", with_session, usual, repeat=args.repeat, control=usual)
    print("@@" + json.dumps({"process": args.process_id, "comparison": dataclasses.asdict(result)}), flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(repeat: int = 5, epochs: int = 2, processes: int = 2):
    """Run the workers; process 0's ``Comparison`` (wall), its CPU-time twin and the A/A row."""
    from common import Comparison, median_interval

    coordinator = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               JAX_COORDINATOR_BIND_ADDRESS=coordinator,
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    env.pop("XLA_FLAGS", None)
    store = tempfile.mkdtemp(prefix="repro-bench-processes-")
    logs = [tempfile.TemporaryFile("w+") for _ in range(processes)]
    workers = [subprocess.Popen([sys.executable, __file__, "--worker", "--coordinator", coordinator,
                                 "--num-processes", str(processes), "--process-id", str(i), "--repeat", str(repeat),
                                 "--epochs", str(epochs), "--store", store],
                                env=env, stdout=logs[i], stderr=subprocess.STDOUT, start_new_session=True)
               for i in range(processes)]
    deadline = time.monotonic() + DEADLINE
    try:
        for process in workers:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        for process in workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    outputs = []
    for process, log in zip(workers, logs):
        log.seek(0)
        text = log.read()
        if process.returncode != 0 or "@@" not in text:
            raise RuntimeError(f"a worker ended with {process.returncode}:\n{text[-3000:]}")
        outputs.append(json.loads(text.rsplit("@@", 1)[1]))
    measured = {o["process"]: Comparison(**o["comparison"]) for o in outputs}
    result = measured[0]
    low, high = median_interval(result.ratios)
    other = measured[1]
    result.goal = "as close to 1 as the A/A row"
    result.note = (f"{processes} JAX processes on 127.0.0.1 (gloo), DataParallel, one CPU device each; "
                   f"process 0's timings, {repeat} rounds after one warm-up. 95% bootstrap interval of the median "
                   f"ratio: {low:.3f}–{high:.3f}. Process 1 measured {other.ratio:.3f} "
                   f"(its A/A {other.aa('').ratio:.3f}). "
                   "Each fit recompiles on both sides (a fresh optimizer; the usual recipe's compile), so both "
                   "trace and compile the train step every fit")
    short = result.name.split(":")[0]
    return [result, result.cpu(f"{short}: process CPU time", result.goal), result.aa(f"{short}: A/A control")]


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--coordinator", help=argparse.SUPPRESS)
    parser.add_argument("--num-processes", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--process-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = _arguments()
    if arguments.worker:
        worker(arguments)
    else:
        sys.path.insert(0, HERE)
        for row in main(arguments.repeat, arguments.epochs):
            print(row)
            print(row.row())
            if row.note:
                print("note:", row.note)
