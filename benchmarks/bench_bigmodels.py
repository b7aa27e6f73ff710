"""Big models: memory, restore, result fingerprint and the whole fit cell against the usual recipe.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_bigmodels.py [--sizes 100MB,1GB,1GB-bf16] [--repeat 3]
    PYTHONPATH=. .venv/bin/python benchmarks/bench_bigmodels.py --sizes 4GB --repeat 1   # alone: ~14 GB of RAM

A model of SIZE is a stack of Dense layers (4096 wide from 1 GB up; 2048 wide at 100 MB),
TensorFlow backend, float32 (bfloat16 for ``-bf16``). Adam up to 1 GB float32; SGD for
bfloat16 (Keras' Adam leaves bfloat16 variables unchanged) and at 4 GB (Adam's two slots
would not fit beside the usual recipe's copy in 24 GB). Rows, each against a baseline
timed in the same run:

* peak resident memory (VmHWM) of a real kernel running the workflow (snapshot, fits at
  settings 1, 2, 1) with the magics, divided by a kernel running the usual recipe
  (``get_weights`` after compile; recompile + ``set_weights`` + fit each time); goal ≤ 1.0;
* restore (check, fresh optimizer, recompile, variables from the memory-mapped safetensors
  file) divided by a NumPy copy of the same bytes; goal ≤ 1.5; and against the usual
  recipe's compile + ``set_weights``;
* the result fingerprint, one variable at a time and without a copy, against the former
  way (a host copy of every variable, then the hash); throughput goal ≥ 5 GB/s;
* at 1 GB: the whole fit cell (``%%repro_fit``) against the usual recipe's cell, with an A/A
  control and a breakdown: restore, fingerprint, op determinism, ledger; goal ≤ 1.2;
* a LoRA fine-tune's restore (rank 4 on every Dense: the base kernels frozen, verified by
  checksum) against a full restore of the same model; goal ≤ 0.1.
"""
from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from common import Comparison, interleaved, timed_both  # noqa: E402

GB = 1e9
SIZES = {  # name: (layers, width, dtype, optimizer)
    "100MB": (6, 2048, "float32", "keras.optimizers.Adam(1e-4)"),
    "1GB": (16, 4096, "float32", "keras.optimizers.Adam(1e-4)"),
    "4GB": (64, 4096, "float32", "keras.optimizers.SGD(1e-4)"),
    "1GB-bf16": (32, 4096, "bfloat16", "keras.optimizers.SGD(1e-4)"),
}
BUILD = '''
import numpy as np, keras
layers, width, dtype = {layers}, {width}, "{dtype}"
model = keras.Sequential([keras.Input((width,))] + [keras.layers.Dense(width, use_bias=False, dtype=dtype)
                                                    for _ in range(layers)])
{prepare}
model.compile(optimizer={optimizer}, loss="mse")
X_raw = np.random.default_rng(0).normal(size=(8, width)).astype("float32")
y_raw = np.zeros((8, width), "float32")
'''
DATA = "alpha = {alpha}\nX, y = X_raw * alpha, y_raw"
FIT = "history = model.fit(X, y, epochs=1, batch_size=8, verbose=0)"
USUAL = "model.compile(optimizer={optimizer}, loss='mse')\nmodel.set_weights(initial)\n" + FIT
PEAK = "int(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)) * 1024"


class MemoryComparison(Comparison):
    """A row whose two sides are bytes (peak resident memory), not seconds."""

    def row(self) -> str:
        med = statistics.median
        return (f"| {self.name} | {med(self.subject) / 2**30:,.2f} GiB peak | {med(self.baseline) / 2**30:,.2f} GiB peak"
                f" | **{self._ratio(self.ratio)}** ({self._ratio(min(self.ratios))}–{self._ratio(max(self.ratios))}) "
                f"| {self.goal} |")

    def __str__(self) -> str:
        med = statistics.median
        return (f"{self.name}: ratio {self._ratio(self.ratio)}; peak {med(self.subject) / 2**30:.2f} GiB vs "
                f"{med(self.baseline) / 2**30:.2f} GiB; goal {self.goal}")


def build_source(size: str, lora: bool = False) -> str:
    layers, width, dtype, optimizer = SIZES[size]
    prepare = "for layer in model.layers:\n    layer.enable_lora(4)" if lora else ""
    return BUILD.format(layers=layers, width=width, dtype=dtype, optimizer=optimizer, prepare=prepare)


def peak_rss_of_kernel(size: str, magics: bool) -> int:
    """VmHWM of a fresh real kernel after the workflow: build, snapshot, fits at 1, 2, 1."""
    from kernel import Kernel

    optimizer = SIZES[size][3]
    with Kernel(env={"KERAS_BACKEND": "tensorflow"}) as kernel:
        if magics:
            kernel.run("%load_ext jupyter_repro\n%repro_seed 42")
        kernel.run("import re\n" + build_source(size))
        kernel.run("%repro_snapshot model" if magics else "keras.utils.set_random_seed(42)\ninitial = model.get_weights()")
        for alpha in (1.0, 2.0, 1.0):
            kernel.run(DATA.format(alpha=alpha))
            kernel.run("%%repro_fit model\n" + FIT if magics else USUAL.format(optimizer=optimizer), timeout=1800)
        return kernel.value(PEAK)


def memory_row(size: str, rounds: int) -> Comparison:
    subject, baseline = [], []
    for i in range(rounds):  # one kernel at a time, alternating which goes first
        for magics in ((True, False) if i % 2 == 0 else (False, True)):
            (subject if magics else baseline).append(peak_rss_of_kernel(size, magics))
            print(f"  {size} peak RSS, {'magics' if magics else 'usual recipe'}: "
                  f"{(subject if magics else baseline)[-1] / 2**30:.2f} GiB", flush=True)
    row = MemoryComparison(f"peak resident memory of the kernel, {size} model: magics vs usual recipe",
                           subject, baseline, goal="≤ 1.0")
    row.note = (f"real kernels, one at a time: build + compile ({SIZES[size][3].split('(')[0]}), then "
                "`%repro_snapshot` + 3 `%%repro_fit` cells, or `get_weights` + 3 × (compile + `set_weights` + fit); "
                f"{rounds} kernel(s) per side")
    print(row, flush=True)
    return row


def shell(store: str):
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.ReproMagics.store = store
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "jupyter_repro")
    return ip


def run(ip, source):
    result = ip.run_cell(source)
    result.raise_error()
    return result.result


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current resident size


def peak_during(fn) -> int:
    """Bytes by which ``fn`` raised the process's peak resident size."""
    import resource  # noqa: F401 -- Linux only, like /proc

    gc.collect()
    reset_peak()
    before = _rss("VmRSS")
    fn()
    return _rss("VmHWM") - before


def _rss(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024


def in_process_rows(size: str, repeat: int, whole_cell: bool) -> list[Comparison]:
    """Restore, fingerprint and (at 1 GB) the whole fit cell, in one in-process shell."""
    import numpy as np

    from jupyter_repro.fingerprint import fingerprint_arrays
    from jupyter_repro.snapshot import model_fingerprint, read_variables

    ip = shell(tempfile.mkdtemp(prefix="repro-bench-big-"))
    run(ip, "%repro_seed 42")
    run(ip, build_source(size))
    started = time.perf_counter()
    run(ip, "%repro_snapshot model")
    snapshot_seconds = time.perf_counter() - started
    magics = ip.magics_manager.registry["ReproMagics"]
    snapshot = magics.snapshots["model"]
    model = ip.user_ns["model"]
    nbytes = snapshot.nbytes
    assert snapshot.kept is None, "the benchmark measures the memory-mapped snapshot"
    buffer = np.ones(nbytes, np.uint8)
    rows = []

    restore = interleaved(f"restore of a {size} model (recompile + variables from the mapped file) vs np.copy of its bytes",
                          lambda: snapshot.restore(model), lambda: np.copy(buffer), repeat, goal="≤ 1.5")
    restore.note = (f"{nbytes / GB:.2f} GB; the first `%repro_snapshot` (fingerprint + fsync'd write) took "
                    f"{snapshot_seconds:.1f} s; process CPU time ratio {restore.cpu('').ratio:.3f}")
    rows.append(restore)
    run(ip, "initial = model.get_weights()")
    optimizer = SIZES[size][3]
    usual = interleaved(f"restore of a {size} model vs the usual recipe's compile + set_weights",
                        lambda: snapshot.restore(model),
                        lambda: run(ip, f"model.compile(optimizer={optimizer}, loss='mse')\nmodel.set_weights(initial)"),
                        repeat, goal="≤ 1.0")
    rows.append(usual)
    del ip.user_ns["initial"]
    gc.collect()

    def former_fingerprint():
        values = read_variables(model)
        return fingerprint_arrays((str(i), a) for i, a in enumerate(values))

    assert model_fingerprint(model) == former_fingerprint()
    fingerprint = interleaved(f"result fingerprint of a {size} model: streamed, no copy vs copy every variable then hash",
                              lambda: model_fingerprint(model), former_fingerprint, repeat, goal="≥ 5 GB/s")
    extra = peak_during(lambda: model_fingerprint(model)), peak_during(former_fingerprint)
    fingerprint.note = (f"throughput {nbytes / statistics.median(fingerprint.subject) / GB:.1f} GB/s wall "
                        f"({nbytes / statistics.median(fingerprint.subject_cpu) / GB:.1f} GB/s of process CPU time) vs "
                        f"{nbytes / statistics.median(fingerprint.baseline) / GB:.1f} GB/s; peak resident memory added "
                        f"while fingerprinting: {extra[0] / 2**20:,.0f} MiB vs {extra[1] / 2**20:,.0f} MiB")
    print(fingerprint.note, flush=True)
    rows.append(fingerprint)

    if whole_cell:
        rows += whole_cell_rows(ip, size, repeat)
    ip.run_line_magic("unload_ext", "jupyter_repro")
    type(ip).clear_instance()
    return rows


def whole_cell_rows(ip, size: str, repeat: int) -> list[Comparison]:
    """The fit cell as a user runs it, against the usual recipe's cell; then where the time goes."""
    from tensorflow.python.framework import config as tf_config

    from jupyter_repro.ledger import Ledger
    from jupyter_repro.snapshot import model_fingerprint

    optimizer = SIZES[size][3]
    model = ip.user_ns["model"]
    run(ip, DATA.format(alpha=1.0))
    run(ip, "keras.utils.set_random_seed(42)\ninitial = model.get_weights()")
    usual = USUAL.format(optimizer=optimizer)
    cell = interleaved(f"whole fit cell, {size} model (1 step): `%%repro_fit` vs the usual recipe",
                       lambda: run(ip, "%%repro_fit model\n" + FIT), lambda: run(ip, usual), repeat,
                       goal="≤ 1.2", control=lambda: run(ip, usual))
    rows = [cell, cell.aa(f"A/A control: the usual recipe's cell vs itself ({size})")]
    snapshot = ip.magics_manager.registry["ReproMagics"].snapshots["model"]
    parts = {}
    parts["restore"] = [timed_both(lambda: snapshot.restore(model))[0] for _ in range(repeat)]
    parts["compile + set_weights (usual)"] = [timed_both(lambda: run(ip, f"model.compile(optimizer={optimizer}, "
                                                                         "loss='mse')\nmodel.set_weights(initial)"))[0]
                                              for _ in range(repeat)]
    parts["result fingerprint"] = [timed_both(lambda: model_fingerprint(model))[0] for _ in range(repeat)]
    ledger = Ledger(ip.magics_manager.registry["ReproMagics"].store)
    record = dict(ledger.records()[-1])
    parts["ledger (read + append one line)"] = [timed_both(lambda: (ledger.records(), ledger.append(dict(record))))[0]
                                                for _ in range(repeat)]
    parts["fixed cost (`%%repro_fit` with `pass`)"] = [timed_both(lambda: run(ip, "%%repro_fit model\npass"))[0]
                                                        for _ in range(repeat)]

    def fit_with(determinism):
        (tf_config.enable_op_determinism if determinism else tf_config.disable_op_determinism)()
        run(ip, usual)

    determinism = interleaved(f"op determinism on vs off, usual recipe's cell ({size})",
                              lambda: fit_with(True), lambda: fit_with(False), repeat, goal="(breakdown)")
    tf_config.enable_op_determinism()
    med = statistics.median
    cell.note = ("breakdown, median seconds: " + "; ".join(f"{k} {med(v):.3f}" for k, v in parts.items())
                 + f"; usual recipe's cell {med(cell.baseline):.3f}, `%%repro_fit` cell {med(cell.subject):.3f}; "
                 f"op determinism: see its row ({determinism.ratio:.3f}×)")
    print(cell.note, flush=True)
    rows.append(determinism)
    return rows


def lora_row(size: str, repeat: int) -> Comparison:
    """A LoRA fine-tune's restore (frozen base kernels verified, not rewritten) vs a full restore."""
    ip = shell(tempfile.mkdtemp(prefix="repro-bench-lora-"))
    run(ip, "%repro_seed 42")
    run(ip, build_source(size, lora=True))
    run(ip, "%repro_snapshot model")
    run(ip, DATA.format(alpha=1.0))
    run(ip, "%%repro_fit model\n" + FIT)  # trained once: the LoRA matrices differ from the snapshot
    snapshot = ip.magics_manager.registry["ReproMagics"].snapshots["model"]
    model = ip.user_ns["model"]

    def full():
        snapshot.restore(model, values=snapshot.values)  # every variable written, none compared

    done = snapshot.restore(model)
    row = interleaved(f"LoRA (rank 4) restore vs full restore, {size} model", lambda: snapshot.restore(model), full,
                      repeat, goal="≤ 0.1")
    row.note = (f"{done.assigned} variables written ({done.bytes_assigned / 2**20:.1f} MiB), {done.unchanged} frozen "
                f"verified by checksum and left as they were; full restore writes all {len(model.variables)}")
    print(row.note, flush=True)
    ip.run_line_magic("unload_ext", "jupyter_repro")
    type(ip).clear_instance()
    return row


def main(sizes=("100MB", "1GB", "1GB-bf16"), repeat: int = 3, memory_rounds: int = 1) -> list[Comparison]:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    rows = []
    for size in sizes:
        rows += in_process_rows(size, repeat, whole_cell=size == "1GB")
        if size == "1GB":
            rows.append(lora_row(size, repeat))
        gc.collect()
    for size in sizes:  # after the in-process rows: this process's own memory is not the kernels'
        rows.append(memory_row(size, memory_rounds))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100MB,1GB,1GB-bf16")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-rounds", type=int, default=1)
    args = parser.parse_args()
    results = main(tuple(args.sizes.split(",")), args.repeat, args.memory_rounds)
    print("\n| benchmark | subject | baseline | ratio | goal |\n|---|---|---|---|---|")
    for result in results:
        print(result.row())
    for result in results:
        if result.note:
            print(f"- {result.name}: {result.note}")
