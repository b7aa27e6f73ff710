"""Pretrained-architecture fine-tuning on an accelerator: a KerasHub backbone in bfloat16,
and one with LoRA, going back and forth on the JAX and PyTorch backends (issue #14's
device check). Runs on CPU too.

    python benchmarks/gpu_bigmodels.py [--epochs 4] [--samples 1024] [--out results.jsonl]

Every process builds a small ``BertBackbone`` from a config (random weights, nothing
downloaded) with a Dropout + Dense head (a plain ``keras.Model``: KerasHub's task classes
need grain or TensorFlow to fit, and the device machine has neither), either in ``dtype="bfloat16"`` (SGD:
Keras' Adam leaves bfloat16 variables unchanged) or float32 with ``enable_lora(rank=4)``
(Adam), and fine-tunes it at settings 1.0 -> 0.4 -> 1.0 (the setting flips the labels;
the order of the examples is drawn per setting). Modes:

* ``plain``: the usual recipe, no package: ``keras.utils.set_random_seed(42)`` at start
  and before each fit, compile with a fresh optimizer, ``set_weights`` of the weights
  taken after compile;
* ``repro``: ``Session(seed=42)`` before Keras is imported, ``Session.snapshot``,
  ``Session.fit`` (op determinism on: the XLA flag, PyTorch's deterministic algorithms);
* ``nodet``: the same with ``deterministic=False``, for the cost of determinism.

All processes of all (backend, case, mode) start at once (two each for plain and repro,
one for nodet), so the seconds are under contention, the same for every mode. "steady
s/epoch" is the median time of the epochs after the first (the first compiles). The
fingerprint is XXH3-128 over every variable's bytes (``model_fingerprint``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

WORKER = r'''
import json, os, statistics, sys, time
sys.path.insert(0, sys.argv[5])
mode, case, epochs, samples = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if mode != "plain":
    from jupyter_repro import Session
    session = Session(seed=42, deterministic=(mode == "repro"), store=None)
import numpy as np, keras, keras_hub
from jupyter_repro.model.snapshot import model_fingerprint   # reads variables; sets nothing
if mode == "plain":
    keras.utils.set_random_seed(42)
tokens = np.random.default_rng(0).integers(1, 1000, size=(samples, 64)).astype("int32")
x = {"token_ids": tokens, "segment_ids": np.zeros_like(tokens), "padding_mask": np.ones_like(tokens, dtype=bool)}
backbone = keras_hub.models.BertBackbone(vocabulary_size=1000, num_layers=2, num_heads=4, hidden_dim=128,
                                         intermediate_dim=256, max_sequence_length=64,
                                         **({"dtype": "bfloat16"} if case == "bfloat16" else {}))
if case == "lora":
    backbone.enable_lora(rank=4)
inputs = {name: keras.Input((64,), dtype=dtype, name=name)
          for name, dtype in (("token_ids", "int32"), ("segment_ids", "int32"), ("padding_mask", "bool"))}
pooled = backbone(inputs)["pooled_output"]
head = keras.layers.Dense(2, dtype="float32")(keras.layers.Dropout(0.1)(pooled))
model = keras.Model(inputs, head)  # a task head of its own: KerasHub tasks want grain or TensorFlow to fit
new_optimizer = (lambda: keras.optimizers.SGD(0.1)) if case == "bfloat16" else (lambda: keras.optimizers.Adam(1e-3))
settings = dict(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.compile(optimizer=new_optimizer(), **settings)
if mode == "plain":
    initial = model.get_weights()
else:
    session.snapshot(model, "model")

class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        seconds.append(time.perf_counter() - self.started)

runs = []
for setting in (1.0, 0.4, 1.0):
    order = np.random.default_rng(int(setting * 10)).permutation(samples)
    x_fit = {k: v[order] for k, v in x.items()}
    y_fit = ((tokens[order, 0] > 500) != (setting != 1.0)).astype("int32")
    seconds = []
    body = lambda: model.fit(x_fit, y_fit, epochs=epochs, batch_size=32, verbose=0, callbacks=[Clock()])
    started = time.perf_counter()
    if mode == "plain":
        keras.utils.set_random_seed(42)
        model.compile(optimizer=new_optimizer(), **settings)
        model.set_weights(initial)
        history = body()
    else:
        history = session.fit(model, body)
    runs.append({"setting": setting, "fingerprint": model_fingerprint(model),
                 "loss": float(history.history["loss"][-1]) if hasattr(history, "history") else None,
                 "seconds": time.perf_counter() - started,
                 "steady": statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]})
backend = keras.backend.backend()
if backend == "jax":
    import jax
    device = jax.devices()[0].device_kind
else:
    import torch
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
dtypes = sorted({str(v.dtype) for v in model.variables})
print("@@" + json.dumps({"runs": runs, "device": f"{backend} {device}", "dtypes": dtypes,
                         "trainable": len(model.trainable_variables), "variables": len(model.variables)}))
'''

MODES = {"plain": 2, "repro": 2, "nodet": 1}  # processes per (backend, case)


def start(backend: str, case: str, mode: str, epochs: int, samples: int) -> subprocess.Popen:
    env = dict(os.environ, KERAS_BACKEND=backend, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    return subprocess.Popen([sys.executable, "-c", WORKER, mode, case, str(epochs), str(samples), ROOT], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=1500)
    if process.returncode != 0 or "@@" not in out:
        return {"error": err[-2500:]}
    return json.loads(out.rsplit("@@", 1)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--backends", default="jax,torch")
    parser.add_argument("--cases", default="bfloat16,lora")
    parser.add_argument("--out", default="")
    parser.add_argument("--timing", action="store_true",
                        help="only the cost of determinism: per (backend, case), one repro and one nodet process "
                             "at once, the pairs one after another (less contention than the full check)")
    args = parser.parse_args()
    if args.timing:
        return timing(args)
    configs = [(backend, case) for backend in args.backends.split(",") for case in args.cases.split(",")]
    launched = {(backend, case, mode): [start(backend, case, mode, args.epochs, args.samples) for _ in range(n)]
                for backend, case in configs for mode, n in MODES.items()}
    results = {key: [result(p) for p in processes] for key, processes in launched.items()}
    rows = ["| backend | case | mode | device | variable dtypes | 1.0 then 1.0 again, in a process | "
            "across 2 processes (all 3 fits) | steady s/epoch |", "|---|---|---|---|---|---|---|---|"]
    for (backend, case, mode), found in results.items():
        if args.out:
            with open(args.out, "a") as handle:
                handle.write(json.dumps({"backend": backend, "case": case, "mode": mode, "processes": found}) + "\n")
        errors = [r["error"] for r in found if "error" in r]
        if errors:
            rows.append(f"| {backend} | {case} | {mode} | failed: {errors[0].strip().splitlines()[-1][:150]} |||||")
            continue
        first = found[0]
        runs = first["runs"]
        within = "identical" if runs[0]["fingerprint"] == runs[2]["fingerprint"] else "DIFFERS"
        within += f" ({runs[0]['fingerprint'][:8]} / {runs[2]['fingerprint'][:8]})"
        across = "—"
        if len(found) == 2:
            same = [r["fingerprint"] for r in found[0]["runs"]] == [r["fingerprint"] for r in found[1]["runs"]]
            across = "identical" if same else "DIFFERS"
        steady = statistics.median(r["steady"] for f in found for r in f["runs"])
        rows.append(f"| {backend} | {case} | {mode} | {first['device']} | {', '.join(first['dtypes'])} | {within} | "
                    f"{across} | {steady:.3f} |")
    print("\n".join(rows))
    for backend, case in configs:  # the cost of op determinism: repro's steady epochs over nodet's
        repro, nodet = results[(backend, case, "repro")], results[(backend, case, "nodet")]
        if all("runs" in r for r in repro + nodet):
            ratio = (statistics.median(r["steady"] for f in repro for r in f["runs"])
                     / statistics.median(r["steady"] for f in nodet for r in f["runs"]))
            print(f"determinism cost {backend} {case}: steady epoch, on / off = {ratio:.3f}")


def timing(args) -> None:
    """Per (backend, case): repro and nodet side by side, the pairs one after another."""
    for backend in args.backends.split(","):
        for case in args.cases.split(","):
            pair = {mode: start(backend, case, mode, args.epochs, args.samples) for mode in ("repro", "nodet")}
            found = {mode: result(process) for mode, process in pair.items()}
            if args.out:
                with open(args.out, "a") as handle:
                    handle.write(json.dumps({"backend": backend, "case": case, "timing": found}) + "\n")
            if any("error" in r for r in found.values()):
                print(f"{backend} {case}: failed", {m: r.get("error", "")[-300:] for m, r in found.items()})
                continue
            steady = {mode: statistics.median(r["steady"] for r in found[mode]["runs"]) for mode in found}
            print(f"determinism cost {backend} {case}: steady s/epoch on {steady['repro']:.4f}, "
                  f"off {steady['nodet']:.4f}, on / off = {steady['repro'] / steady['nodet']:.3f}", flush=True)


if __name__ == "__main__":
    main()
