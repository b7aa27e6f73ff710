"""The portable mode's cost against native, per Keras backend (TensorFlow, JAX), with an A/A
control; and the cost of per-epoch weight fingerprints.

Each setting runs in fresh processes (its pins are read when the libraries load), rounds
interleaved: native, portable, native again (the A/A control: what two identical settings
differ by on this shared machine). Each process times ``model.fit`` after a one-epoch warm-up
(tracing). Two models: the FD001 MLP (21 → 16 → 32 → 64 → 1) and a bigger Conv1D + Dense one.

``--pins``: which pin costs what on the conv model: native, each floor, the AVX floor less one
pin at a time, single pins alone, with the fitted weights' fingerprint of each (the same
fingerprint: the same bits, so a pin that leaves it unchanged decides nothing here).
``comparisons`` gives ``run_all.py`` its rows: each floor against native, per backend.

    python benchmarks/bench_portable.py [--rounds 3] [--epochs 5] [--backend jax] [--pins [SETTING ...]]
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
from common import Comparison  # noqa: E402

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
seconds = time.perf_counter() - start
import hashlib
digest = hashlib.sha256()
for weights in model.get_weights():   # every variable's bytes: the bits the pins are meant to fix
    digest.update(np.ascontiguousarray(weights).tobytes())
print(json.dumps([seconds, digest.hexdigest()[:16]]))
'''


def run(which, epochs, env, fingerprints=False):
    data = os.environ.get("CMAPSS_DIR", "")
    done = subprocess.run([sys.executable, "-c", FIT, which, str(epochs), "1" if fingerprints else "0",
                           os.path.join(HERE, ".."), data],
                          capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env),
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])[0]


def fit(which, epochs, env, python=sys.executable):
    """(seconds, fingerprint of the fitted weights) of one fresh process."""
    data = os.environ.get("CMAPSS_DIR", "")
    done = subprocess.run([python, "-c", FIT, which, str(epochs), "0", os.path.join(HERE, ".."), data],
                          capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env),
                          check=True)
    return tuple(json.loads(done.stdout.strip().splitlines()[-1]))


def without(pins, *names):
    """``pins`` less ``names`` (each then left as the process finds it: unset)."""
    return {name: value for name, value in pins.items() if name not in names}


def pin_settings(backend):
    """Native, each floor's pins, and the AVX floor less one pin at a time: which pin costs what."""
    native = {"KERAS_BACKEND": backend}
    avx, avx2 = (dict(native, **backend_env(backend, {}, name)) for name in ("avx", "avx2"))
    return {"native": native, "avx floor (all pins)": avx,
            "avx less TF_ENABLE_ONEDNN_OPTS=0": without(avx, "TF_ENABLE_ONEDNN_OPTS"),
            "avx less ONEDNN_MAX_CPU_ISA": without(avx, "ONEDNN_MAX_CPU_ISA"),
            "avx less GLIBC_TUNABLES": without(avx, "GLIBC_TUNABLES"),
            "avx less NumPy/OpenBLAS pins": without(avx, "NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE"),
            "avx2 floor (all pins)": avx2,
            "avx2 with TF_ENABLE_ONEDNN_OPTS=1": dict(avx2, TF_ENABLE_ONEDNN_OPTS="1"),
            "native + TF_ENABLE_ONEDNN_OPTS=0 alone": dict(native, TF_ENABLE_ONEDNN_OPTS="0"),
            "native + ONEDNN_MAX_CPU_ISA=AVX alone": dict(native, ONEDNN_MAX_CPU_ISA="AVX"),
            "native + ONEDNN_MAX_CPU_ISA=AVX2 alone": dict(native, ONEDNN_MAX_CPU_ISA="AVX2"),
            "native (A/A)": native}


def pins(backend, which, rounds, epochs, only=()):
    """Each setting of ``pin_settings`` (those starting with one of ``only``, when given; native
    and its A/A control always) in fresh processes, rounds interleaved (the order
    reversed every other round): the median seconds, the ratio to native, and the fitted
    weights' fingerprint of each (equal fingerprints: the same bits)."""
    settings = {name: env for name, env in pin_settings(backend).items()
                if not only or name in ("native", "native (A/A)") or name.startswith(tuple(only))}
    if backend == "jax":
        for name in [n for n in settings if "ONEDNN_OPTS" in n]:
            del settings[name]
    runs = {name: [] for name in settings}
    for round_ in range(rounds):
        for name in (list(settings) if round_ % 2 == 0 else list(settings)[::-1]):
            runs[name].append(fit(which, epochs, settings[name]))
            print(f"  {name}: {runs[name][-1][0]:.2f} s {runs[name][-1][1]}", file=sys.stderr, flush=True)
    native = statistics.median(seconds for seconds, _ in runs["native"])
    rows = {}
    for name, results in runs.items():
        median = statistics.median(seconds for seconds, _ in results)
        rows[name] = {"median": median, "ratio": median / native, "fingerprints": sorted({f for _, f in results})}
        print(f"{backend} {which} {name}: {median:.2f} s, {median / native:.3f}x native, "
              f"weights {','.join(rows[name]['fingerprints'])}", flush=True)
    return rows


#: the Python with JAX (this project keeps it in a second environment): $JAX_PYTHON, else .venv-backends
JAX_PYTHON = os.environ.get("JAX_PYTHON") or os.path.join(HERE, "..", ".venv-backends", "bin", "python")


def comparisons(rounds, epochs, backends=("tensorflow", "jax")):
    """For ``run_all.py``: each floor against native on the conv model, per backend, in fresh
    processes, rounds interleaved (the order reversed every other round) with native timed
    twice (the A/A control). A backend whose Python is not there is left out, and said to be."""
    rows = []
    for backend in backends:
        python = sys.executable if backend == "tensorflow" else JAX_PYTHON
        if not os.path.exists(python):
            print(f"bench_portable: no {backend} Python at {python}; its rows are left out", file=sys.stderr)
            continue
        native = {"KERAS_BACKEND": backend}
        settings = {"native": native, "avx": dict(native, **backend_env(backend, {}, "avx")),
                    "avx2": dict(native, **backend_env(backend, {}, "avx2")), "native (A/A)": native}
        times = {name: [] for name in settings}
        bits = {name: set() for name in settings}
        for round_ in range(rounds):
            for name in (list(settings) if round_ % 2 == 0 else list(settings)[::-1]):
                seconds, fingerprint = fit("conv", epochs, settings[name], python)
                times[name].append(seconds)
                bits[name].add(fingerprint)
        same = "; ".join(f"{name} weights {'/'.join(sorted(found))}" for name, found in bits.items())
        for floor_name, goal in (("avx2", "≤ 1.1 (an AVX2-or-better CPU)"), ("avx", "")):
            rows.append(Comparison(f"portable {floor_name} floor vs native, conv model, {backend}", times[floor_name],
                                   times["native"], goal, control=times["native (A/A)"],
                                   note=f"{epochs} epochs per process after a one-epoch warm-up; {same}"))
        rows.append(rows[-1].aa(f"native vs native (A/A), conv model, {backend}"))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow")
    parser.add_argument("--pins", nargs="*", metavar="SETTING",
                        help="the conv model under each floor and the AVX floor less one pin at a time (or only "
                             "the settings whose names start with these words; native always)")
    args = parser.parse_args()
    if args.pins is not None:
        print(json.dumps(pins(args.backend, "conv", args.rounds, args.epochs, args.pins)))
        return
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
