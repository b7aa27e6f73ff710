"""What `%%repro_fit` adds outside `model.fit`, with 0 and 10,000 runs in the ledger, and
a short fit's whole cell (3 and 20 epochs) against the usual recipe, wall and process CPU
time, with an A/A control.

    .venv/bin/python benchmarks/bench_fixed_cost.py [--pairs 12] [--ledger-runs 10000]

Cells run as a user runs them: ``store_history=True, silent=False``, so IPython fires its
``pre_run_cell`` event (the per-cell reseed every real cell pays, on both sides) and
displays the cell's value. The usual recipe is the plain cell a careful user writes:
reseed, compile with a fresh optimizer, ``set_weights``, fit.

"Outside model.fit" is measured, not subtracted from a guess: the model's class gets a
``fit`` that times Keras's own fit (both sides go through it, under the package's
wrapper), and a cell's fixed cost is its wall time less that. What the package adds is
the difference between the two sides' fixed costs, pair by pair. Where that cost goes is
timed phase by phase in process CPU time (the functions wrapped with a timer).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

from bench_fit import PREPARE  # noqa: E402
from common import CMAPSS_DIR, Comparison, interleaved, median_interval, run_cell, user_shell, verdict  # noqa: E402

TIMED_FIT = '''
import functools as _functools, time as _time
bench_fit_seconds = []
_keras_fit = type(model).fit

@_functools.wraps(_keras_fit)
def _timed_fit(self, *args, **kwargs):
    started, cpu = _time.perf_counter(), _time.process_time()
    try:
        return _keras_fit(self, *args, **kwargs)
    finally:
        bench_fit_seconds.append((_time.perf_counter() - started, _time.process_time() - cpu))

type(model).fit = _timed_fit
'''
FIT = ("history = model.fit(X_fit, y_fit, validation_data=(X_val, y_val), epochs={epochs}, batch_size={batch}, "
       "verbose=0)")
SHORT = FIT.format(epochs=1, batch=4096)  # for the fixed cost: a fit of a few steps
USUAL = ("keras.utils.set_random_seed(42)\nmodel.compile(optimizer=keras.optimizers.Adam(), loss='mse')\n"
         "model.set_weights(initial)\n")
#: where the package's time goes: (module, object, attribute, label); each timed where it is
#: looked up at call time, outermost calls only
PHASES = [("run.session", "Session", "_record", "ledger + verdict + environment + state (_record)"),
          ("run.ledger", "Ledger", "records", "reading the ledger"), ("run.ledger", "Ledger", "append", "appending to it"),
          ("run.verdict", None, "decide", "the verdict"), ("run.environment", None, "collect", "the environment"),
          ("model.snapshot", "Snapshot", "restore", "restore: compile + assign (the usual recipe does it too)"),
          ("run.inputs", None, "add_cell", "the notebook names read"), ("run.inputs", None, "architecture", "the architecture"),
          ("run.inputs", None, "add_fit_call", "the fit's arguments, architecture included"),
          ("model.state_read", None, "read_state", "reading the state once (result fingerprint + digests)"),
          ("model.state_read", "StateRead", "unchanged", "the witness (nothing written since?)"),
          ("model.model_state", "UserChanges", "__init__", "the notebook's changes since the last run"),
          ("run.fit", None, "model_fingerprint", "per-epoch fingerprints but the last"),  # bound by name there
          ("cell", "Body", "__init__", "compiling the body"), ("seeding.seeder", "Seeder", "reseed", "reseeding"),
          ("run.session", "Session", "recipe_for", "compile settings")]

def shell(store: str):
    return user_shell(store)


def run(ip, source: str, cpu: bool = False):
    return run_cell(ip, source, cpu)


def fixed_costs(ip, cell: str, into: list):
    """A callable that runs ``cell`` and appends its (wall, CPU) seconds outside Keras's fit."""
    def side():
        wall, cpu = run(ip, cell, cpu=True)
        fit_wall, fit_cpu = ip.user_ns["bench_fit_seconds"][-1]
        into.append((wall - fit_wall, cpu - fit_cpu))
    return side


def fill_ledger(store: str, runs: int) -> int:
    """Append ``runs`` records made from the last real one, each with a new id and input
    key (so each verdict scans the whole ledger) and signed here; the ledger's bytes."""
    from jupyter_repro.run.ledger import Ledger
    from jupyter_repro.store.signing import Signer

    ledger, signer = Ledger(store), Signer()
    read = {k: v for k, v in ledger.records()[-1].items() if k not in ("run", "signature")}
    raw = raw_last_line(store)  # as this version writes it: environment inline or by reference
    lines = []
    for _ in range(runs):
        new = dict(id=os.urandom(8).hex(), input_key=os.urandom(16).hex())
        lines.append(json.dumps(dict(raw, **new, signature=signer.signature(dict(read, **new))),
                                sort_keys=True, ensure_ascii=False))
    with open(ledger.path, "a") as handle:
        handle.write("\n".join(lines) + "\n")
    return os.path.getsize(ledger.path)


def raw_last_line(store: str) -> dict:
    from jupyter_repro.run.ledger import Ledger

    with open(Ledger(store).path, "rb") as handle:
        return json.loads(handle.read().splitlines()[-1])


def breakdown(ip, cell: str, fits: int = 6) -> str:
    """Process CPU milliseconds per fit in each phase (the functions wrapped with a timer,
    outermost calls only; unlike a profiler, this adds nearly nothing to what it times)."""
    import importlib

    spent, depth, originals = {}, {}, []

    def timed(label, function):
        def wrapper(*args, **kwargs):
            depth[label] = depth.get(label, 0) + 1
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                depth[label] -= 1
                if not depth[label]:
                    spent[label] = spent.get(label, 0.0) + time.process_time() - started
        return wrapper

    for module, owner, name, label in PHASES:
        target = importlib.import_module(f"jupyter_repro.{module}")
        target = getattr(target, owner) if owner else target
        originals.append((target, name, target.__dict__[name]))
        setattr(target, name, timed(label, target.__dict__[name]))
    try:
        for _ in range(fits):
            run(ip, cell)
    finally:
        for target, name, original in originals:
            setattr(target, name, original)
    return ", ".join(f"{label} {seconds / fits * 1e3:.2f}" for label, seconds in
                     sorted(spent.items(), key=lambda item: -item[1]))


def fixed_row(ip, name: str, pairs: int) -> Comparison:
    subject, baseline = [], []
    row = interleaved(name, fixed_costs(ip, "%%repro_fit model\n" + SHORT, subject),
                      fixed_costs(ip, USUAL + SHORT, baseline), pairs)
    subject, baseline = subject[-pairs:], baseline[-pairs:]  # the rounds, without the warm-up
    row.subject, row.baseline = [s[0] for s in subject], [b[0] for b in baseline]
    row.subject_cpu, row.baseline_cpu = [s[1] for s in subject], [b[1] for b in baseline]
    row.goal = "package's cost ≤ 5 ms"
    parts = []
    for kind, k in (("wall", 0), ("process CPU", 1)):
        extra = [s[k] - b[k] for s, b in zip(subject, baseline)]
        low, high = median_interval(extra)
        parts.append(f"{kind}: {verdict(low, high, 0.005)}; the package adds {statistics.median(extra) * 1e3:.1f} ms per fit outside model.fit "
                     f"(median of {pairs} pairs; 95% bootstrap interval {low * 1e3:.1f}–{high * 1e3:.1f} ms; "
                     f"%%repro_fit {statistics.median(s[k] for s in subject) * 1e3:.1f} ms, the usual recipe "
                     f"{statistics.median(b[k] for b in baseline) * 1e3:.1f} ms)")
    row.note = "; ".join(parts)
    print(row, "\n" + row.note, flush=True)
    return row


def short_fit_rows(ip, epochs: int, pairs: int, ledger_runs: int) -> list[Comparison]:
    """A short fit's whole cell, `%%repro_fit` against the usual recipe, wall and process CPU
    time, with the usual recipe timed twice per round (the A/A control)."""
    fit = FIT.format(epochs=epochs, batch=256)
    row = interleaved(f"a short fit's whole cell: `%%repro_fit` vs the usual recipe ({epochs}-epoch FD001 MLP, "
                      f"{ledger_runs:,} runs in the ledger), wall", lambda: run(ip, "%%repro_fit model\n" + fit),
                      lambda: run(ip, USUAL + fit), pairs, goal="≤ 1.01", control=lambda: run(ip, USUAL + fit))
    low, high = row.interval()
    row.note = (f"{verdict(low, high, 1.01)}; the usual recipe's cell took {statistics.median(row.baseline):.2f} s (median); 95% bootstrap "
                f"interval of the median ratio over {pairs} pairs: {low:.3f}–{high:.3f}")
    cpu = row.cpu(f"a short fit's whole cell, process CPU time ({epochs} epochs)", goal="≤ 1.01")
    c_low, c_high = cpu.interval()
    cpu.note = f"{verdict(c_low, c_high, 1.01)}; 95% bootstrap interval of the median ratio: {c_low:.3f}–{c_high:.3f}"
    control = row.aa(f"A/A control: the usual recipe vs itself in the same rounds ({epochs} epochs), wall")
    low, high = control.interval()
    control.note = f"95% bootstrap interval of the median ratio: {low:.3f}–{high:.3f}"
    print(row.note, "\n" + cpu.note, "\n" + str(control), "\n" + control.note, flush=True)
    return [row, cpu, control]


def main(pairs: int = 12, ledger_runs: int = 10_000, short_epochs=(3, 20)) -> list[Comparison]:
    store = tempfile.mkdtemp(prefix="repro-bench-fixed-")
    ip = shell(store)
    run(ip, "%repro_seed 42")
    data_dir = CMAPSS_DIR if os.path.isfile(os.path.join(CMAPSS_DIR, "train_FD001.txt")) else None
    run(ip, PREPARE.format(data_dir=data_dir))
    run(ip, TIMED_FIT)
    run(ip, "%repro_snapshot model")
    results = []

    results.append(fixed_row(ip, "fixed cost outside model.fit: `%%repro_fit` vs the usual recipe, "
                                 "0 runs in the ledger before (FD001 MLP, 1 epoch of 4 batches)", pairs))
    results[-1].note += "; where it goes, process CPU ms per fit: " + breakdown(ip, "%%repro_fit model\n" + SHORT)
    print(results[-1].note)

    size = fill_ledger(store, ledger_runs)
    results.append(fixed_row(ip, f"fixed cost outside model.fit: `%%repro_fit` vs the usual recipe, "
                                 f"{ledger_runs:,} runs in the ledger ({size / 1e6:.1f} MB)", pairs))
    line = raw_last_line(store)
    results[-1].note += (f"; a ledger line is {len(json.dumps(line)):,} bytes "
                         f"(environment {'by reference' if 'env_ref' in line else 'inline'}); where it goes, "
                         "process CPU ms per fit: " + breakdown(ip, "%%repro_fit model\n" + SHORT))
    print(results[-1].note)

    for epochs in short_epochs:  # the short fits #30 names: 3 and 20 epochs of the FD001 MLP
        results += short_fit_rows(ip, epochs, pairs, ledger_runs)
    run(ip, "type(model).fit = _keras_fit")  # leave the model's class and the shell as they were
    ip.reset(new_session=False)
    ip.run_line_magic("unload_ext", "jupyter_repro")
    type(ip).clear_instance()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--ledger-runs", type=int, default=10_000)
    args = parser.parse_args()
    for result in main(args.pairs, args.ledger_runs):
        print(result.row())
