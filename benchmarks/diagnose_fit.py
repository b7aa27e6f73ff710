"""Bisect where `%%repro_fit` loses time against a plain fit: variants side by side.

    .venv/bin/python benchmarks/diagnose_fit.py [--variants P,R,W,L] [--epochs 8] [--rounds 6]

Not a benchmark (run_all.py does not run it): a tool for the open question in
docs/performance.md. Each variant is one fit cell, run in rotating order in one
in-process shell; an EpochClock callback (the same in every variant) splits each fit
into its first epoch (tracing) and the rest, in wall and CPU time, and counts stalls
(epochs whose wall time doubles while their CPU time does not). Every variant is
compared with the first one (P, the plain recipe, by default).

Variants: P plain reseed + compile + set_weights; R `%%repro_fit`; W `%%repro_fit` with the
model.fit wrapper (FitCalls) off, so the fit's arguments are not recorded (the cell's code
and the notebook values it reads still are); L `%%repro_fit` with the ledger off (store ""); S the
snapshot's restore in a plain cell; Q the Seeder's reseed in a plain cell; N the plain cell
in a nested run_cell (no package); E the plain cell run by a cell magic with exec() instead
of run_cell (no package); D the plain fit 40 Python frames deeper; M the magic's core written
out in a plain cell, no magic: ``Session.running`` around the fit, as ``%%repro_fit`` calls it
(source and namespace of the cell, the magic's seeder and snapshot), store off.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))

import bench_fit  # noqa: E402
from bench_fit import CLOCK, FIT, PLAIN, PREPARE, epoch_times, run, shell, stalls  # noqa: E402
from common import data_dir  # noqa: E402

SEED = "keras.utils.set_random_seed(42)\n"


def cells(epochs: int) -> dict:
    fit = bench_fit.CLOCKED.format(epochs=epochs)
    plain = PLAIN.replace(FIT, bench_fit.CLOCKED).format(epochs=epochs)  # the benchmark's baseline
    deep = plain.replace("history = model.fit(", "history = _bench_deep(40, lambda: model.fit(") + ")"
    # What %%repro_fit runs, without the magic: the fit body inside Session.running, given the
    # body's source and the notebook namespace as the magic gives them; no store, so no ledger.
    core = (f"with _bench_session.running(model, snapshot=_bench_snapshot, seed=42, source={fit!r},\n"
            "                             namespace=get_ipython().user_ns, hidden=get_ipython().user_ns_hidden,\n"
            "                             label='model'):\n"
            + "".join(f"    {line}\n" for line in fit.splitlines()))
    return {
        "P": plain,
        "M": core,
        "R": "%%repro_fit model\n" + fit,
        "W": "%%repro_fit model\n" + fit,
        "L": "%%repro_fit model\n" + fit,
        "S": "_bench_snapshot.restore(model)\n" + SEED + fit,
        "Q": plain.replace(SEED, "_bench_seeder.reseed(42)\n"),
        "N": "%%bench_nested\n" + plain,
        "D": deep,
        "E": "%%bench_direct\n" + plain,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="P,R,W,L")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    variants = args.variants.split(",")

    ip = shell()
    run(ip, "%repro_seed 42")
    run(ip, PREPARE.format(data_dir=data_dir()))
    run(ip, "%repro_snapshot model")
    run(ip, CLOCK + "\ndef _bench_deep(n, f):\n    return f() if n == 0 else _bench_deep(n - 1, f)\n")
    magics = ip.magics_manager.registry["ReproMagics"]
    from jupyter_repro import Session

    ip.user_ns.update(_bench_snapshot=magics.snapshots["model"], _bench_seeder=magics.seeder,
                      _bench_session=Session(store=None, seeder=magics.seeder))
    ip.register_magic_function(lambda line, cell: ip.run_cell(cell), "cell", "bench_nested")
    ip.register_magic_function(lambda line, cell: exec(compile(ip.transform_cell(cell), "<cell>", "exec"), ip.user_ns),
                               "cell", "bench_direct")
    # W switches the wrapper off on the class itself: Session.running (which the magic calls)
    # still enters and leaves FitCalls(model, inputs, recipe, replay), which then records nothing
    # (W's report then says "no model.fit in the cell"; its ledger line lacks the fit's inputs).
    from jupyter_repro.run import fit as fit_module

    real = fit_module.FitCalls.__enter__, fit_module.FitCalls.__exit__
    store = magics.store

    def arrange(variant):
        fit_module.FitCalls.__enter__, fit_module.FitCalls.__exit__ = real
        magics.store = "" if variant == "L" else store
        if variant == "W":
            fit_module.FitCalls.__enter__ = lambda self: self
            fit_module.FitCalls.__exit__ = lambda self, *exc: False

    source = cells(args.epochs)
    marks = {v: [] for v in variants}
    for v in variants:  # warm-up
        arrange(v)
        run(ip, source[v])
    for r in range(args.rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order[::-1] if r % 2 else order:
            arrange(v)
            gc.collect()
            run(ip, source[v])
            marks[v].append(ip.user_ns["bench_clock"].marks)
        print(r, " ".join(f"{v}={marks[v][-1][-1][0] - marks[v][-1][0][0]:.2f}s" for v in variants), flush=True)
    arrange(None)

    def figures(m):
        times = epoch_times(m)
        later = [t[0] for t in times[1:]] or [times[0][0]]
        return times[0][0], min(later), statistics.median(later), m[-1][0] - m[0][0], m[-1][1] - m[0][1]

    base = variants[0]
    names = ("first epoch", "fastest later epoch", "median later epoch", "fit wall", "fit CPU")
    for v in variants:
        line = f"{v}: stalls {sum(len(stalls(m)) for m in marks[v])} in {len(marks[v])} fits"
        if v != base:
            parts = []
            for i, name in enumerate(names):
                ratios = [figures(a)[i] / figures(b)[i] for a, b in zip(marks[v], marks[base])]
                parts.append(f"{name} {statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})")
            line += f"; vs {base}: " + "; ".join(parts)
        print(line)


if __name__ == "__main__":
    main()
