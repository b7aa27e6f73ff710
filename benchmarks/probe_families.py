"""Which layer families, optimizers and precisions the portable mode holds, per backend, by
measurement (issue #29): for each family a small seeded model, SHA-256 (12 hex) of every
variable's bytes at each stage (initial weights, forward output, gradients, weights and
optimizer state after one step, after a short fit), in one process per (backend, CPU,
setting): natively here, with and without the mode, and under ``qemu-x86_64 -cpu X`` with it.
The environment of each process is the kernelspec's (``kernel_spec(..., portable)``), so the
probe measures exactly what ``install-kernel --portable`` gives. Writes
``benchmarks/results/portable_coverage.json``; ``--markdown`` makes docs/portable-coverage.md
from it (measured values only)::

    python benchmarks/probe_families.py --backend tensorflow --cpu native --cpu SandyBridge
    python benchmarks/probe_families.py --markdown
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from families import BATCH, build, make_data, optimizer

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "portable_coverage.json")
DOC = os.path.join(HERE, "..", "docs", "portable-coverage.md")
STAGES = ("init", "forward", "grad", "step1", "final")
#: what each family's model is: (family, precision, optimizer) -> the line shown in the docs
FAMILIES = {
    "dense": "Dense 16→16 tanh → 1",
    "conv1d": "Conv1D(8, 3, relu) → Flatten → Dense",
    "conv2d": "Conv2D(4, 3, relu) → Flatten → Dense",
    "pooling": "Dense → MaxPooling1D → AveragePooling1D → GlobalAveragePooling1D → Dense",
    "batchnorm": "Dense → BatchNormalization → tanh → Dense",
    "layernorm": "Dense → LayerNormalization → Dense",
    "embedding": "Embedding(50, 8) → GlobalAveragePooling1D → Dense",
    "lstm": "LSTM(8) → Dense",
    "gru": "GRU(8) → Dense",
    "attention": "MultiHeadAttention(2 heads, key 4), self-attention → GlobalAveragePooling1D → Dense",
    "dropout": "Dense → Dropout(0.3) → Dense",
    "preprocessing": "Normalization (adapted) → Rescaling → Dense",
}
OPTIMIZERS = ("adam", "adamw", "sgd_momentum", "rmsprop")
#: (family, optimizer, policy) cases each process runs: every family with Adam in float32, the
#: other optimizers on the MLP, and mixed_bfloat16 for every family
CASES = ([(family, "adam", "float32") for family in FAMILIES]
         + [("dense", opt, "float32") for opt in OPTIMIZERS[1:]]
         + [(family, "adam", "mixed_bfloat16") for family in FAMILIES])
EPOCHS = 2


def case_name(family, optimizer, policy):
    return family + ("" if optimizer == "adam" else f"+{optimizer}") + ("" if policy == "float32" else f"@{policy}")


# ----------------------------------------------------------------------------------------- child


def child(only):
    """One process: every case, printing one JSON line per case."""
    import numpy as np
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()

    def h(*arrays):
        digest = hashlib.sha256()
        for array in arrays:
            digest.update(np.ascontiguousarray(np.asarray(array)).tobytes())
        return digest.hexdigest()[:12]

    rng, data = make_data()
    print("PROBE " + json.dumps({"case": "data", "hash": h(*data.values())}), flush=True)
    if not only or "rsqrt" in only:  # the op normalisation layers use: an approximation (rsqrtps) or exact?
        x = rng.uniform(0.01, 100, size=1 << 16).astype("float32")
        r = np.asarray(keras.ops.rsqrt(x))
        exact = (1 / np.sqrt(x.astype("float64"))).astype("float32")
        print("PROBE " + json.dumps({"case": "rsqrt", "hash": h(r), "not_correctly_rounded": int((r != exact).sum()),
                                     "of": int(x.size)}), flush=True)
    def gradients(model, x, y):
        if backend == "tensorflow":
            with tf.GradientTape() as tape:
                loss = keras.ops.mean(keras.ops.square(model(x, training=True) - y))
            # an Embedding's gradient is IndexedSlices: its dense values, not an object array's pointers
            return [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
        import jax
        import jax.numpy as jnp

        def loss(trainable, non_trainable):
            pred, _ = model.stateless_call(trainable, non_trainable, x, training=True)
            return jnp.mean((pred - y) ** 2)
        # jitted, as fit runs it (and one compile, not one per op: an emulated CPU compiles slowly)
        return jax.jit(jax.grad(loss))([v.value for v in model.trainable_variables],
                                       [v.value for v in model.non_trainable_variables])

    def forward(model, x):
        if backend == "tensorflow":
            return model(x, training=False)
        import jax

        return jax.jit(lambda t, n: model.stateless_call(t, n, x, training=False)[0])(
            [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])

    for family, opt, policy in CASES:
        name = case_name(family, opt, policy)
        if only and name not in only:
            continue
        started = time.time()
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(42)
        model, x = build(keras, family, data)
        y = data["y"]
        model.compile(optimizer(keras, opt), "mse")
        out = {"case": name, "init": h(*model.get_weights()), "forward": h(forward(model, x[:BATCH]))}
        out["grad"] = h(*gradients(model, x[:BATCH], y[:BATCH]))
        model.train_on_batch(x[:BATCH], y[:BATCH])
        out["step1"] = h(*model.get_weights(), *[v.numpy() if hasattr(v, "numpy") else v
                                                 for v in model.optimizer.variables])
        model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0, shuffle=False)
        out["final"] = h(*model.get_weights(), *[np.asarray(v) for v in model.optimizer.variables])
        tick = time.perf_counter()
        model.fit(x, y, epochs=5, batch_size=BATCH, verbose=0, shuffle=False)  # compiled: the cost
        out["fit_s"] = round(time.perf_counter() - tick, 3)
        out["case_s"] = round(time.time() - started, 1)
        print("PROBE " + json.dumps(out), flush=True)
        keras.backend.clear_session()


# ---------------------------------------------------------------------------------------- parent


def environment(backend, portable):
    sys.path.insert(0, os.path.join(HERE, ".."))
    from jupyter_repro.kernelspec import kernel_spec

    env = dict(os.environ)
    for name in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS", "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES",
                 "GLIBC_TUNABLES", "XLA_FLAGS"):
        env.pop(name, None)
    env.update(kernel_spec(42, "probe", backend, portable)["env"], TF_CPP_MIN_LOG_LEVEL="3")
    return env


def run(backend, cpu, portable, python, only):
    """One child process; its cases, keyed by name."""
    argv = [python, os.path.abspath(__file__), "--child"] + [f"--only={name}" for name in only]
    if cpu != "native":
        argv = [shutil.which("qemu-x86_64"), "-cpu", cpu] + argv
    started = time.time()
    errors = tempfile.TemporaryFile("w+")  # a file, not a pipe: TensorFlow's logs must not block the child
    proc = subprocess.Popen(argv, env=environment(backend, portable), stdout=subprocess.PIPE, stderr=errors,
                            text=True)
    cases = {}
    def result():
        return {"backend": backend, "cpu": cpu, "mode": "portable" if portable else "native",
                "seconds": round(time.time() - started),
                "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cases": dict(cases)}

    for line in proc.stdout:  # as each case ends: a long emulated run shows, and keeps, its progress
        if line.startswith("PROBE "):
            case = json.loads(line[6:])
            cases[case.pop("case")] = case
            print(f"  {time.strftime('%H:%M:%S')} {backend} {cpu}: {line[6:].strip()}", flush=True)
            record(result(), merge=True)
    code = proc.wait()
    if code < 0:
        cases["error"] = f"stopped (signal {-code}) after {len(cases)} cases"
    elif code:
        errors.seek(0)
        cases["error"] = errors.read()[-2000:]
    return result()


def record(result, merge):
    """Put ``result`` in the evidence file, replacing its (backend, cpu, mode) run; ``merge``: keep
    the cases of that run it does not have."""
    results = load()  # reread: another probe may have written meanwhile
    key = (result["backend"], result["cpu"], result["mode"])
    before = [r for r in results["runs"] if (r["backend"], r["cpu"], r["mode"]) == key]
    if before and merge:
        result = dict(result, cases=dict(before[0]["cases"], **result["cases"]))
    results["runs"] = [r for r in results["runs"] if (r["backend"], r["cpu"], r["mode"]) != key] + [result]
    save(results)


def host():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
            break
    flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "AVX"
    return f"{name} ({isa})"


def load():
    return json.load(open(RESULTS)) if os.path.exists(RESULTS) else {"host": host(), "runs": []}


def save(results):
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as out:
        json.dump(results, out, indent=1, sort_keys=True)


# ------------------------------------------------------------------------------------ the evidence


def verdict(results, backend, case):
    """(covered, text): the case's stages compared across the portable runs that have it."""
    runs = [r for r in results["runs"] if r["backend"] == backend and r["mode"] == "portable"
            and case in r["cases"]]
    native = next((r["cases"][case] for r in runs if r["cpu"] == "native"), None)
    emulated = [r for r in runs if r["cpu"] != "native"]
    if native is None or not emulated:
        return False, "not measured" + ("" if native is None else " under emulation")
    for run in emulated:
        stage = next((s for s in STAGES if run["cases"][case][s] != native[s]), None)
        if stage:
            return False, f"differs at {stage} ({run['cpu']} vs native)"
    return True, "equal (native, " + ", ".join(r["cpu"] for r in emulated) + ")"


def covered(results, backend):
    """The cases every stage of which agreed on every CPU measured."""
    cases = {case for r in results["runs"] if r["backend"] == backend for case in r["cases"]}
    return sorted(case for case in cases if verdict(results, backend, case)[0])


def write(results, path):
    """docs/portable-coverage.md from the evidence: measured values only."""
    cpus = ("native", "SandyBridge", "Haswell")
    lines = ["# What the portable mode covers, per layer family (measured)", "",
             "Generated by `python benchmarks/probe_families.py --markdown` from "
             "`benchmarks/results/portable_coverage.json`; do not edit by hand. Every hash is the first 12 hex of "
             "SHA-256 over every variable's bytes at a stage of a small seeded fit (64 rows, batch 16: "
             "`init` the initial weights, `forward` one batch's output, `grad` the gradients of an MSE, "
             "`step1` the weights and optimizer state after one `train_on_batch`, `final` the same after "
             f"{EPOCHS} epochs), one process per (backend, CPU) with the kernelspec's environment "
             "(`install-kernel --portable`).", "",
             f"Native CPU: **{results['host']}**; emulated: `qemu-x86_64 -cpu SandyBridge` (AVX, the floor) and "
             "`-cpu Haswell` (AVX2, FMA). A case is covered when every stage equals across every CPU measured. "
             "`native, no mode` is the twin: the same probe natively without the pins; a different hash there "
             "shows the comparison can fail. Cost: seconds of 5 compiled epochs (20 steps) of the probe's small "
             "model natively, with the mode / without it, from one run of each, taken minutes apart on 2 cores "
             "shared with other jobs (load average 5 to 9): **not a reliable measure of the mode's cost** (a mode "
             "'faster' than native here is load and per-step overhead, not a speed-up); the cost on real models, "
             "with an A/A control, is in docs/reproducing-across-machines.md (\"Its cost\", on the earlier Xeon: 0.96× for an MLP, "
             "2.33× for a convolutional model on TensorFlow).", "",
             "BatchNormalization and LayerNormalization use `rsqrt`. `qemu` computes the `rsqrtps` estimate "
             "exactly where a real CPU reads its own table, so emulation cannot vouch for an op built on it. On "
             "TensorFlow `rsqrt` is that estimate refined by a Newton step, and its bits differ here between the "
             "native CPU and qemu (the line under each backend's heading): both families are withdrawn there. On "
             "JAX the mode's `--xla_cpu_enable_platform_dependent_math=false` keeps XLA off the estimate, and the "
             "bits agree on every CPU measured; a second real CPU (CI running the conformance notebooks) is the "
             "proof emulation cannot give.", ""]
    sys.path.insert(0, os.path.join(HERE, ".."))
    from jupyter_repro.seeding.portable import COVERAGE

    lines += ["The claim the code makes from it (`portable.COVERAGE`, the report's second line), and what it "
              "withdraws:", ""]
    for backend, claim in COVERAGE.items():
        lines.append(f"* **{backend}**: {claim}")
        lines += [f"  * not covered: `{name}`: {why}" for name, why in claim.withdrawn.items()]
    lines.append("")
    for backend in ("tensorflow", "jax"):
        runs = {(r["cpu"], r["mode"]): r for r in results["runs"] if r["backend"] == backend}
        if not runs:
            continue
        lines += [f"## {backend}", "", "Runs (each the last written; a rerun of some cases keeps the others): " + "; ".join(
            f"{cpu} {mode} ({r['at']}, {r['seconds']} s" + ("" if "error" not in r["cases"] else ", " + r["cases"]["error"] if r["cases"]["error"].startswith("stopped")
               else ", FAILED") + ")"
            for (cpu, mode), r in sorted(runs.items())), ""]
        rsqrt = [(cpu, runs[cpu, "portable"]["cases"]["rsqrt"]) for cpu in cpus
                 if "rsqrt" in runs.get((cpu, "portable"), {}).get("cases", {})]
        if rsqrt:
            lines += ["`keras.ops.rsqrt` alone (65,536 float32 values in [0.01, 100)), with the mode: " + "; ".join(
                f"{cpu} `{r['hash']}` ({r['not_correctly_rounded']:,} not the correctly rounded 1/sqrt)"
                for cpu, r in rsqrt) + ".", ""]
        lines += ["| case | model | final: " + " | final: ".join(cpus) + " | final: native, no mode | verdict | cost |",
                  "|---|---|" + "---|" * (len(cpus) + 3)]
        cases = sorted({c for r in runs.values() for c in r["cases"] if c not in ("data", "error", "rsqrt")},
                       key=lambda c: [case_name(*k) for k in CASES].index(c) if c in [case_name(*k) for k in CASES] else 99)
        for case in cases:
            def final(cpu, mode="portable"):
                entry = runs.get((cpu, mode), {}).get("cases", {}).get(case)
                return f"`{entry['final']}`" if entry else ""
            portable, plain = (runs.get(("native", m), {}).get("cases", {}).get(case, {}) for m in ("portable", "native"))
            cost = (f"{portable['fit_s']:.2f} / {plain['fit_s']:.2f} s = {portable['fit_s'] / plain['fit_s']:.2f}×"
                    if portable.get("fit_s") and plain.get("fit_s") else "")
            ok, text = verdict(results, backend, case)
            family = case.split("+")[0].split("@")[0]
            lines.append(f"| {case} | {FAMILIES[family]} | " + " | ".join(final(cpu) for cpu in cpus)
                         + f" | {final('native', 'native')} | {'✓ ' if ok else '✗ '}{text} | {cost} |")
        lines += ["", "Every stage, every CPU:", "", "| case | CPU | " + " | ".join(STAGES) + " |",
                  "|---|---|" + "---|" * len(STAGES)]
        for case in cases:
            for (cpu, mode), run in sorted(runs.items(), key=lambda item: (cpus + ("x",)).index(item[0][0])
                                           if item[0][0] in cpus else 9):
                entry = run["cases"].get(case)
                if entry:
                    who = cpu + ("" if mode == "portable" else ", no mode")
                    lines.append(f"| {case} | {who} | " + " | ".join(f"`{entry[s]}`" for s in STAGES) + " |")
        lines.append("")
    with open(path, "w") as out:
        out.write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--backend", choices=("tensorflow", "jax"))
    parser.add_argument("--cpu", action="append", default=[], help="native, or a qemu-x86_64 -cpu model")
    parser.add_argument("--native-plain", action="store_true", help="also natively without the mode (the twin)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.child:
        return child(set(args.only))
    if args.markdown:
        return write(load(), DOC)
    settings = [(cpu, True) for cpu in args.cpu] + ([("native", False)] if args.native_plain else [])
    for cpu, portable in settings:
        result = run(args.backend, cpu, portable, args.python, args.only)
        record(result, merge=bool(args.only))
        print(f"{args.backend} {cpu} {result['mode']}: {len(result['cases'])} cases, {result['seconds']} s",
              "ERROR" if "error" in result["cases"] else "", flush=True)


if __name__ == "__main__":
    main()
