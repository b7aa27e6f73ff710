"""Back-and-forth and two-process identity on the JAX and PyTorch backends, with and
without the package: the check issue #7 asks for on a GPU. Runs on CPU too.

    python benchmarks/gpu_check.py [--epochs 10] [--out results.jsonl]

Each (backend, mode) runs in two fresh processes; each process trains the MLP with
Dropout for alpha 1.0 -> 0.4 -> 0.2 -> 0.4 on the synthetic FD001-like fleet (the
device machine has neither TensorFlow nor NASA's files). "plain" restores
get_weights() and calls keras.utils.set_random_seed before each fit; "repro" uses
jupyter_repro's Snapshot + reproducible_fit. "plain" does not use the package at all (it
would put XLA_FLAGS in place), so it shows what a user without it gets. With --parallel all
eight processes run at once (a GPU machine has the cores; JAX then allocates on demand).
Prints a Markdown table for docs/gpu.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

WORKER = r'''
import json, os, sys, time
sys.path.insert(0, sys.argv[3])
mode, epochs = sys.argv[1], int(sys.argv[2])
from jupyter_repro import Seeder, Snapshot, model_fingerprint, reproducible_fit
if mode == "repro":
    seeder = Seeder()
    seeder.seed_everything(42)
import numpy as np, keras
if mode == "plain":
    keras.utils.set_random_seed(42)
from jupyter_repro.datasets import SENSORS, synthetic_fleet
data = synthetic_fleet(0)
train = data.train
train = train.assign(rul=(train.groupby("unit").cycle.transform("max") - train.cycle).clip(upper=125))
lo, hi = train[SENSORS].min(), train[SENSORS].max()
train[SENSORS] = (train[SENSORS] - lo) / (hi - lo).replace(0, 1)
model = keras.Sequential([keras.Input((21,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dropout(0.2),
                          keras.layers.Dense(32, activation="relu"), keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
snapshot, initial = Snapshot.capture(model, "model"), model.get_weights()
runs = []
for alpha in (1.0, 0.4, 0.2, 0.4):
    smoothed = train[SENSORS].groupby(train.unit).transform(lambda s: s.ewm(alpha=alpha).mean())
    X, y = smoothed.to_numpy("float32"), train.rul.to_numpy("float32")
    started = time.perf_counter()
    if mode == "repro":
        with reproducible_fit(model, snapshot, 42, seeder):
            model.fit(X, y, epochs=epochs, batch_size=32, verbose=0)
    else:
        keras.utils.set_random_seed(42)
        model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
        model.set_weights(initial)
        model.fit(X, y, epochs=epochs, batch_size=32, verbose=0)
    rmse = float(np.sqrt(np.mean((model.predict(X, verbose=0).ravel() - y) ** 2)))
    runs.append({"alpha": alpha, "rmse": rmse, "fingerprint": model_fingerprint(model),
                 "seconds": round(time.perf_counter() - started, 2)})
print("@@" + json.dumps({"runs": runs, "device": str(keras.backend.backend()) + " " + (
    __import__("jax").devices()[0].device_kind if keras.backend.backend() == "jax" else
    (__import__("torch").cuda.get_device_name(0) if __import__("torch").cuda.is_available() else "cpu"))}))
'''


def start(backend: str, mode: str, epochs: int) -> subprocess.Popen:
    env = dict(os.environ, KERAS_BACKEND=backend, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    return subprocess.Popen([sys.executable, "-c", WORKER, mode, str(epochs), ROOT], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=1200)
    if process.returncode != 0:
        raise RuntimeError(err[-3000:])
    return json.loads(out.rsplit("@@", 1)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--backends", default="jax,torch")
    parser.add_argument("--out", default="")
    parser.add_argument("--parallel", action="store_true", help="run all processes at once")
    args = parser.parse_args()
    configs = [(backend, mode) for backend in args.backends.split(",") for mode in ("plain", "repro")]
    launched = {config: [start(*config, args.epochs) for _ in range(2)] for config in configs} if args.parallel else {}
    timing = f" ({2 * len(configs)} processes at once)" if args.parallel else ""
    rows = ["| backend | mode | device | alpha 0.4 RMSE, first / again (process 1) | within a process | "
            f"across 2 processes (all 4 fits) | s per fit{timing} |", "|---|---|---|---|---|---|---|"]
    for backend, mode in configs:
        processes = launched.get((backend, mode))
        if processes:
            first, second = (result(p) for p in processes)
        else:
            first = result(start(backend, mode, args.epochs))
            second = result(start(backend, mode, args.epochs))
        runs = first["runs"]
        within = runs[1]["fingerprint"] == runs[3]["fingerprint"]
        across = [r["fingerprint"] for r in first["runs"]] == [r["fingerprint"] for r in second["runs"]]
        seconds = sorted(r["seconds"] for r in runs)[1]
        rows.append(f"| {backend} | {mode} | {first['device']} | {runs[1]['rmse']:.6f} / {runs[3]['rmse']:.6f} | "
                    f"{'identical' if within else 'DIFFERS'} | {'identical' if across else 'DIFFERS'} | {seconds} |")
        print(rows[-1], flush=True)
        if args.out:  # one line per configuration as it finishes, so a cut-off run keeps what it has
            with open(args.out, "a") as handle:
                handle.write(json.dumps({"backend": backend, "mode": mode, "first": first, "second": second}) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
