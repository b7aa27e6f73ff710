"""The portable mode's cost against native, per Keras backend (TensorFlow, JAX), with an A/A
control; and the cost of per-epoch weight fingerprints.

Each setting runs in fresh processes (its pins are read when the libraries load), rounds
interleaved: native, portable, native again (the A/A control: what two identical settings
differ by on this shared machine). Each process times ``model.fit`` after a one-epoch warm-up
(tracing). Two models: the FD001 MLP (21 → 16 → 32 → 64 → 1) and a bigger Conv1D + Dense one.

    python benchmarks/bench_portable.py [--rounds 3] [--epochs 5] [--backend jax]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from jupyter_repro.seeding.portable import backend_env  # noqa: E402

FIT = r'''
import json, sys, time
import numpy as np, keras
keras.utils.set_random_seed(1)
if keras.backend.backend() == "tensorflow":
    import tensorflow as tf; tf.config.experimental.enable_op_determinism()
which, epochs, fingerprints = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
rng = np.random.default_rng(0)
if which == "fd001":
    sys.path.insert(0, sys.argv[4])
    from jupyter_repro.datasets import SENSORS, load_or_synthesize
    data = load_or_synthesize(sys.argv[5] or None).train
    X = data[SENSORS].to_numpy("float32"); X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    y = (data.groupby("unit").cycle.transform("max") - data.cycle).clip(upper=125).to_numpy("float32")
    model = keras.Sequential([keras.Input((21,)), keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(32, activation="relu"), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
    batch = 32
else:
    X = rng.normal(size=(4096, 64, 8)).astype("float32"); y = X[:, :, 0].mean(1)
    model = keras.Sequential([keras.Input((64, 8)), keras.layers.Conv1D(64, 5, activation="relu"),
        keras.layers.Conv1D(64, 5, activation="relu"), keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(256, activation="relu"), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(1)])
    batch = 64
model.compile("adam", "mse")
callbacks = []
if fingerprints:
    sys.path.insert(0, sys.argv[4])
    from jupyter_repro.run.fit import _epoch_callback
    callbacks = [_epoch_callback([])]
model.fit(X, y, epochs=1, batch_size=batch, verbose=0, callbacks=callbacks)   # warm-up: tracing
start = time.perf_counter()
model.fit(X, y, epochs=epochs, batch_size=batch, verbose=0, callbacks=callbacks)
print(json.dumps(time.perf_counter() - start))
'''


def run(which, epochs, env, fingerprints=False):
    data = os.environ.get("CMAPSS_DIR", "")
    done = subprocess.run([sys.executable, "-c", FIT, which, str(epochs), "1" if fingerprints else "0",
                           os.path.join(HERE, ".."), data],
                          capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env),
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow")
    args = parser.parse_args()
    native = {"KERAS_BACKEND": args.backend}
    portable = dict(native, **backend_env(args.backend, os.environ))
    results = {}
    for which in ("fd001", "conv"):
        times = {"native": [], "portable": [], "native (A/A)": [], "epoch fingerprints": []}
        for _ in range(args.rounds):
            times["native"].append(run(which, args.epochs, native))
            times["portable"].append(run(which, args.epochs, portable))
            times["native (A/A)"].append(run(which, args.epochs, native))
            times["epoch fingerprints"].append(run(which, args.epochs, native, fingerprints=True))
        median = {name: statistics.median(values) for name, values in times.items()}
        results[which] = {"seconds": times, "median": median,
                          "portable / native": median["portable"] / median["native"],
                          "A/A": median["native (A/A)"] / median["native"],
                          "epoch fingerprints / native": median["epoch fingerprints"] / median["native"]}
        print(f"{args.backend} {which}: " + ", ".join(f"{k} {v:.2f} s" for k, v in median.items())
              + f"; portable/native {results[which]['portable / native']:.3f}, A/A {results[which]['A/A']:.3f}, "
              f"epoch fingerprints/native {results[which]['epoch fingerprints / native']:.3f}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
