"""Big models: memory, restore, result fingerprint and the whole fit cell against the usual recipe.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_bigmodels.py [--sizes 100MB,1GB,1GB-bf16,4GB] [--repeat 3]

A model of SIZE is a stack of Dense layers (4096 wide from 1 GB up; 2048 wide at 100 MB),
TensorFlow backend, float32 (bfloat16 for ``-bf16``). Adam at 100 MB; SGD (no slots) from
1 GB up, and for bfloat16 (Keras' Adam leaves bfloat16 variables unchanged): with Keras 3.15.1
and TensorFlow 2.21 each recompile with a new Adam keeps about twice the model's bytes alive
on both sides (measured 2026-11-27: +200 MB per fit cell of a 100 MB model, `%%repro_fit` and the
usual recipe alike), so the 1 GB rows' dozens of fits with Adam ran out of 24 GB. The 4 GB model is measured last, in
a process of its own started after the others are done, with one repetition and one kernel
per side (about 14 GB of RAM at its peak). Rows, each against a baseline timed in the same run:

* peak resident memory (VmHWM) of a real kernel running the workflow (snapshot, fits at
  settings 1, 2, 1) with the magics, divided by a kernel running the usual recipe
  (``get_weights`` after compile; recompile + ``set_weights`` + fit each time); goal ≤ 1.0;
* restore (check, fresh optimizer, recompile, variables from the memory-mapped safetensors
  file) divided by a NumPy copy of the same bytes; goal ≤ 1.5; and against the usual
  recipe's compile + ``set_weights`` (no goal: for comparison);
* the result fingerprint, one variable at a time and without a copy, against the former
  way (a host copy of every variable, then the hash); throughput goal ≥ 5 GB/s;
* ``--cells`` (``run_all --only big_cells``), what reading the state costs a fit (issue #30):
  at 1 GB the whole fit cell (``%%repro_fit``) against the usual recipe's cell, each on a
  model of its own, with an A/A control and a breakdown (restore, one read of the state,
  op determinism, ledger), goal ≤ 1.1; and a LoRA fine-tune's restore (rank 4 on every
  Dense: the base kernels frozen, vouched for by the last read's witness) against a full
  restore of the same model, goal ≤ 0.1.

Cells run as a user runs them (``store_history=True, silent=False``).
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from common import Comparison, interleaved, median_interval, run_cell, timed_both, user_shell, verdict  # noqa: E402

GB = 1e9
SIZES = {  # name: (layers, width, dtype, optimizer)
    "100MB": (6, 2048, "float32", "keras.optimizers.Adam(1e-4)"),
    "1GB": (16, 4096, "float32", "keras.optimizers.SGD(1e-4)"),
    "4GB": (64, 4096, "float32", "keras.optimizers.SGD(1e-4)"),
    "1GB-bf16": (32, 4096, "bfloat16", "keras.optimizers.SGD(1e-4)"),
}
ALONE = ("4GB",)  # measured in a process of their own, after the others, one repetition
BUILD = """
import numpy as np, keras
layers, width, dtype = {layers}, {width}, "{dtype}"
model = keras.Sequential([keras.Input((width,))] + [keras.layers.Dense(width, use_bias=False, dtype=dtype)
                                                    for _ in range(layers)])
{prepare}
model.compile(optimizer={optimizer}, loss="mse")
X_raw = np.random.default_rng(0).normal(size=(8, width)).astype("float32")
y_raw = np.zeros((8, width), "float32")
"""
DATA = "alpha = {alpha}\nX, y = X_raw * alpha, y_raw"
FIT = "history = model.fit(X, y, epochs=1, batch_size=8, verbose=0)"
USUAL = "model.compile(optimizer={optimizer}, loss='mse')\nmodel.set_weights(initial)\n" + FIT
MEMORY = ("{k: int(re.search(k + r':\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)) * 1024 "
          "for k in ('VmHWM', 'VmRSS', 'RssAnon', 'RssFile')}")


def build_source(size: str, lora: bool = False) -> str:
    layers, width, dtype, optimizer = SIZES[size]
    prepare = "for layer in model.layers:\n    layer.enable_lora(4)" if lora else ""
    return BUILD.format(layers=layers, width=width, dtype=dtype, optimizer=optimizer, prepare=prepare)


def kernel_memory(size: str, magics: bool) -> dict:
    """Memory of a fresh real kernel: after the model is built, and at the end of the
    workflow (snapshot or ``get_weights``, fits at 1, 2, 1), with its peak (VmHWM)."""
    from kernel import Kernel

    optimizer = SIZES[size][3]
    with Kernel(env={"KERAS_BACKEND": "tensorflow"}) as kernel:
        if magics:
            kernel.run("%load_ext jupyter_repro\n%repro_seed 42")
        kernel.run("import re\n" + build_source(size), timeout=1800)
        built = kernel.value(MEMORY)
        kernel.run("%repro_snapshot model" if magics else "keras.utils.set_random_seed(42)\ninitial = model.get_weights()",
                   timeout=1800)
        for alpha in (1.0, 2.0, 1.0):
            kernel.run(DATA.format(alpha=alpha))
            kernel.run("%%repro_fit model\n" + FIT if magics else USUAL.format(optimizer=optimizer), timeout=1800)
        return dict(kernel.value(MEMORY), built=built["VmRSS"])


def memory_row(size: str, rounds: int) -> Comparison:
    runs = {True: [], False: []}
    for i in range(rounds):  # one kernel at a time, alternating which goes first
        for magics in ((True, False) if i % 2 == 0 else (False, True)):
            runs[magics].append(kernel_memory(size, magics))
            m = runs[magics][-1]
            print(f"  {size} kernel, {'magics' if magics else 'usual recipe'}: peak {m['VmHWM'] / 2**30:.2f} GiB, "
                  f"{m['built'] / 2**30:.2f} GiB after the build", flush=True)
    row = Comparison(f"peak resident memory (VmHWM) of a real kernel, {size} model: the magics vs the usual recipe",
                     [m["VmHWM"] for m in runs[True]], [m["VmHWM"] for m in runs[False]], goal="≤ 1.0", unit="bytes")
    med = lambda side, key: statistics.median(m[key] for m in runs[side]) / 2**30  # noqa: E731
    above = [(s["VmHWM"] - s["built"]) / max(b["VmHWM"] - b["built"], 1) for s, b in zip(runs[True], runs[False])]
    low, high = min(row.ratios), max(row.ratios)
    row.note = (f"{verdict(low, high, 1.0)} ({rounds} kernel(s) per side, one at a time: build + compile "
                f"({SIZES[size][3].split('(')[0]}), then `%repro_snapshot` + 3 `%%repro_fit` cells, or `get_weights` + "
                f"3 × (compile + `set_weights` + fit)); resident after the build {med(True, 'built'):.2f} vs "
                f"{med(False, 'built'):.2f} GiB, so the peak above the built model is {med(True, 'VmHWM') - med(True, 'built'):.2f} "
                f"vs {med(False, 'VmHWM') - med(False, 'built'):.2f} GiB (ratio {statistics.median(above):.3f}); at the end, "
                f"anonymous {med(True, 'RssAnon'):.2f} vs {med(False, 'RssAnon'):.2f} GiB, file-backed (the mapped "
                f"snapshot, reclaimable page cache) {med(True, 'RssFile'):.2f} vs {med(False, 'RssFile'):.2f} GiB")
    print(row.name, f"ratio {row.ratio:.3f};", row.note, flush=True)
    return row


def _rss(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024


def peak_during(fn) -> int:
    """Bytes by which ``fn`` raised this process's peak resident size (Linux)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current resident size
    before = _rss("VmRSS")
    fn()
    return _rss("VmHWM") - before


def close_shell(ip) -> None:
    import keras

    ip.reset(new_session=False)
    ip.run_line_magic("unload_ext", "jupyter_repro")
    type(ip).clear_instance()
    keras.backend.clear_session()
    gc.collect()


def in_process_rows(size: str, repeat: int, cell_pairs: int) -> list[Comparison]:
    """Restore, fingerprint and (at 1 GB) the whole fit cell, in one in-process shell."""
    import numpy as np

    from jupyter_repro.values.arrays import fingerprint_arrays
    from jupyter_repro.model.snapshot import model_fingerprint, read_variables

    ip = user_shell(tempfile.mkdtemp(prefix="repro-bench-big-"))
    run = lambda source: run_cell(ip, source)  # noqa: E731
    run("%repro_seed 42")
    run(build_source(size))
    snapshot_seconds = run("%repro_snapshot model")
    snapshot = ip.magics_manager.registry["ReproMagics"].snapshots["model"]
    model = ip.user_ns["model"]
    nbytes = snapshot.nbytes
    assert snapshot.kept is None, "the benchmark measures the memory-mapped snapshot"
    optimizer = SIZES[size][3]
    rows = []

    buffer = np.ones(nbytes, np.uint8)
    restore = interleaved(f"restore of a {size} model (check + recompile + variables from the mapped file) vs "
                          "np.copy of its bytes", lambda: snapshot.restore(model), lambda: np.copy(buffer), repeat,
                          goal="≤ 1.5")
    buffer = None  # 1 copy of the model fewer before the next rows
    compile_alone = statistics.median(timed_both(lambda: run(f"model.compile(optimizer={optimizer}, loss='mse')"))[0]
                                      for _ in range(repeat))
    low, high = median_interval(restore.ratios)
    restore.note = (f"{verdict(low, high, 1.5)} (95% bootstrap interval of the median {low:.3f}–{high:.3f}); "
                    f"{nbytes / GB:.2f} GB; the recompile alone (a cell) takes {compile_alone * 1e3:.1f} ms "
                    f"(median); process CPU time ratio {restore.cpu('').ratio:.3f}; the first `%repro_snapshot` "
                    f"(fingerprint + fsync'd write) took {snapshot_seconds:.1f} s")
    rows.append(restore)

    run("initial = model.get_weights()")
    usual = interleaved(f"restore of a {size} model vs the usual recipe's compile + set_weights",
                        lambda: snapshot.restore(model),
                        lambda: run(f"model.compile(optimizer={optimizer}, loss='mse')\nmodel.set_weights(initial)"),
                        repeat, goal="none (comparison)")
    rows.append(usual)
    del ip.user_ns["initial"]
    gc.collect()

    def former_fingerprint():
        values = read_variables(model)
        return fingerprint_arrays((str(i), a) for i, a in enumerate(values))

    assert model_fingerprint(model) == former_fingerprint()
    fingerprint = interleaved(f"result fingerprint of a {size} model: streamed, no copy vs a copy of every variable "
                              "then the hash", lambda: model_fingerprint(model), former_fingerprint, repeat,
                              goal="≥ 5 GB/s")
    extra = peak_during(lambda: model_fingerprint(model)), peak_during(former_fingerprint)
    rates = sorted(nbytes / t / GB for t in fingerprint.subject)
    fingerprint.note = (f"{verdict(rates[0], rates[-1], 5.0, at_most=False)}: throughput {nbytes / statistics.median(fingerprint.subject) / GB:.1f} GB/s "
                        f"wall (min–max {rates[0]:.1f}–{rates[-1]:.1f}; "
                        f"{nbytes / statistics.median(fingerprint.subject_cpu) / GB:.1f} GB/s of process CPU time) vs "
                        f"{nbytes / statistics.median(fingerprint.baseline) / GB:.1f} GB/s with the copy; peak resident "
                        f"memory added while fingerprinting: {extra[0] / 2**20:,.0f} MiB vs {extra[1] / 2**20:,.0f} MiB "
                        "(pages this process's allocators had already freed and kept are not counted)")
    print(fingerprint.note, flush=True)
    rows.append(fingerprint)
    close_shell(ip)
    return rows


def cell_rows(repeat: int, cell_pairs: int, sizes=("1GB", "4GB")) -> list[Comparison]:
    """What reading the state costs a fit (issue #30): the whole fit cell against the usual
    recipe at each size (4 GB: half the rounds, about 13 GB of RAM at its peak), then at
    1 GB a LoRA fine-tune's restore against a full one; ``run_all --only big_cells``."""
    rows = []
    for size in sizes:
        ip = user_shell(tempfile.mkdtemp(prefix="repro-bench-cell-"))
        run = lambda source: run_cell(ip, source)  # noqa: E731
        run("%repro_seed 42")
        run(build_source(size))
        run("%repro_snapshot model")
        rows += whole_cell_rows(ip, size, repeat, cell_pairs if size == "1GB" else max(2, cell_pairs // 2))
        close_shell(ip)
        gc.collect()
        if size == "1GB":
            rows.append(lora_row(size, repeat))
    return rows



def whole_cell_rows(ip, size: str, repeat: int, pairs: int) -> list[Comparison]:
    """The fit cell as a user runs it, against the usual recipe's cell; then where the time goes.

    Each side trains a model of its own (the same weights), as a user going back and forth
    with one of them does: the `%%repro_fit` side finds its model as its last fit left it."""
    from tensorflow.python.framework import config as tf_config

    from jupyter_repro.run.ledger import Ledger
    from jupyter_repro.model.state_read import read_state

    run = lambda source: run_cell(ip, source)  # noqa: E731
    optimizer = SIZES[size][3]
    model = ip.user_ns["model"]
    run(DATA.format(alpha=1.0))
    run("keras.utils.set_random_seed(42)\ninitial = model.get_weights()\nusual_model = keras.models.clone_model(model)\n"
        f"usual_model.compile(optimizer={optimizer}, loss='mse')\nusual_model.set_weights(initial)")
    usual = "keras.utils.set_random_seed(42)\n" + USUAL.format(optimizer=optimizer).replace("model.", "usual_model.")
    cell = interleaved(f"whole fit cell, {size} model (1 step): `%%repro_fit` vs the usual recipe",
                       lambda: run("%%repro_fit model\n" + FIT), lambda: run(usual), pairs,
                       goal="≤ 1.1", control=lambda: run(usual))
    control = cell.aa(f"A/A control: the usual recipe's cell vs itself ({size})")
    low, high = cell.interval()
    a_low, a_high = control.interval()
    control.note = f"95% bootstrap interval of the median ratio over {pairs} rounds: {a_low:.3f}–{a_high:.3f}"
    snapshot = ip.magics_manager.registry["ReproMagics"].snapshots["model"]
    parts = {}
    parts["restore"] = [timed_both(lambda: snapshot.restore(model))[0] for _ in range(repeat)]
    parts["the usual recipe's compile + set_weights"] = [
        run(f"usual_model.compile(optimizer={optimizer}, loss='mse')\nusual_model.set_weights(initial)")
        for _ in range(repeat)]
    parts["one read of the state (result fingerprint + digests)"] = [timed_both(lambda: read_state(model))[0]
                                                                      for _ in range(repeat)]
    ledger = Ledger(ip.magics_manager.registry["ReproMagics"].store)
    record = dict(ledger.records()[-1])
    parts["ledger (read + append one line)"] = [timed_both(lambda: (ledger.records(), ledger.append(dict(record))))[0]
                                                for _ in range(repeat)]
    parts["`%%repro_fit` cell with body `pass` (restore included)"] = [run("%%repro_fit model\npass")
                                                                        for _ in range(repeat)]

    def fit_with(determinism):
        (tf_config.enable_op_determinism if determinism else tf_config.disable_op_determinism)()
        run(usual)

    determinism = interleaved(f"op determinism on vs off, the usual recipe's cell ({size})",
                              lambda: fit_with(True), lambda: fit_with(False), repeat, goal="none (breakdown)")
    tf_config.enable_op_determinism()
    d_low, d_high = determinism.interval()
    determinism.note = f"95% bootstrap interval of the median ratio: {d_low:.3f}–{d_high:.3f}"
    med = statistics.median
    cell.note = (f"{verdict(low, high, 1.1)} (95% bootstrap interval of the median ratio over {pairs} rounds "
                 f"{low:.3f}–{high:.3f}; A/A {control.ratio:.3f}, {a_low:.3f}–{a_high:.3f}); breakdown, median seconds "
                 f"of {repeat}: " + "; ".join(f"{k} {med(v):.3f}" for k, v in parts.items())
                 + f"; the usual recipe's cell {med(cell.baseline):.3f}, `%%repro_fit` cell {med(cell.subject):.3f}; "
                 f"op determinism on vs off: {determinism.ratio:.3f}× (its row)")
    print(cell.note, flush=True)
    return [cell, control, determinism]


def lora_row(size: str, repeat: int) -> Comparison:
    """A LoRA fine-tune's restore vs a full restore. The fine-tune's is the one `%%repro_fit`
    makes: after a fit, whose read of the state (untimed here: the fit's) left a witness
    that vouches for the frozen base kernels, which are then neither read nor written."""
    from jupyter_repro.model.state_read import read_state

    ip = user_shell(tempfile.mkdtemp(prefix="repro-bench-lora-"))
    run = lambda source: run_cell(ip, source)  # noqa: E731
    run("%repro_seed 42")
    run(build_source(size, lora=True))
    run("%repro_snapshot model")
    run(DATA.format(alpha=1.0))
    run("%%repro_fit model\n" + FIT)  # trained once: the LoRA matrices differ from the snapshot
    snapshot = ip.magics_manager.registry["ReproMagics"].snapshots["model"]
    model = ip.user_ns["model"]

    def full():
        snapshot.restore(model, values=snapshot.values)  # every variable written, none compared

    def after_a_fit():
        """The read of the state a fit leaves beside the model (not timed: the fit's cost)."""
        return read_state(model)

    def lora(read):
        return snapshot.restore(model, left=read)

    done = lora(after_a_fit())
    subject, baseline = [], []
    for i in range(repeat + 1):  # one warm-up pair, then alternating order
        read = after_a_fit()
        pair = [lambda: timed_both(lambda: lora(read)), lambda: timed_both(full)]
        times = [side() for side in (pair if i % 2 else pair[::-1])]
        if i:
            subject.append(times[0] if i % 2 else times[1])
            baseline.append(times[1] if i % 2 else times[0])
    row = Comparison(f"LoRA (rank 4) restore vs full restore, {size} model", [s[0] for s in subject],
                     [b[0] for b in baseline], "≤ 0.1", subject_cpu=[s[1] for s in subject],
                     baseline_cpu=[b[1] for b in baseline])
    low, high = median_interval(row.ratios)
    row.note = (f"{verdict(low, high, 0.1)} (95% bootstrap interval of the median {low:.3f}–{high:.3f}); both recompile "
                f"first; {done.assigned} variables written ({done.bytes_assigned / 2**20:.1f} MiB), {done.unchanged} "
                f"frozen left as they were, vouched for by the last read's witness (not read: "
                f"model/state_read.py); the full restore writes all {len(model.variables)} "
                f"({snapshot.nbytes / 2**20:,.0f} MiB)")
    print(row.note, flush=True)
    close_shell(ip)
    return row


def alone(sizes, repeat: int, memory_rounds: int) -> list[Comparison]:
    """``sizes`` measured by this script in a process of its own; its rows."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        done = subprocess.run([sys.executable, __file__, "--sizes", ",".join(sizes), "--repeat", str(repeat),
                               "--memory-rounds", str(memory_rounds), "--json", out.name])
        if done.returncode != 0:  # e.g. killed for memory: the other sizes' rows are kept
            print(f"warning: the {', '.join(sizes)} run failed (exit status {done.returncode}); no rows for it",
                  file=sys.stderr, flush=True)
            return []
        return [Comparison(**r) for r in json.load(open(out.name))]


def main(sizes=("100MB", "1GB", "1GB-bf16", "4GB"), repeat: int = 3, memory_rounds: int = 1,
         cell_pairs: int = 6, separate: bool = True) -> list[Comparison]:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    later = [size for size in sizes if size in ALONE] if separate else []
    here = [size for size in sizes if size not in later]
    rows = []
    for size in here:
        started = time.perf_counter()
        rows += in_process_rows(size, repeat, cell_pairs)
        print(f"{size}: in-process rows took {time.perf_counter() - started:.0f} s", flush=True)
    for size in here:  # real kernels, one at a time
        started = time.perf_counter()
        rows.append(memory_row(size, memory_rounds))
        print(f"{size}: kernels took {time.perf_counter() - started:.0f} s", flush=True)
    if later:
        rows += alone(later, 1, 1)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100MB,1GB,1GB-bf16,4GB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-rounds", type=int, default=1)
    parser.add_argument("--cell-pairs", type=int, default=6, help="rounds of the whole-cell rows at 1 GB")
    parser.add_argument("--json", help="write the rows here (as docs/performance.json stores them)")
    parser.add_argument("--cells", action="store_true", help="only the fit cell rows (and LoRA at 1 GB), for --sizes")
    args = parser.parse_args()
    results = cell_rows(args.repeat, args.cell_pairs, tuple(args.sizes.split(","))) if args.cells else main(
        tuple(args.sizes.split(",")), args.repeat, args.memory_rounds, args.cell_pairs, separate=not args.json)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([dataclasses.asdict(r) for r in results], handle)
    print("\n| benchmark | subject | baseline | ratio | goal |\n|---|---|---|---|---|")
    for result in results:
        print(result.row())
    for result in results:
        if result.note:
            print(f"- {result.name}: {result.note}")
