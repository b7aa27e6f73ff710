"""Run the benchmarks and write docs/performance.md (raw timings in docs/performance.json).

    .venv/bin/python benchmarks/run_all.py [--epochs 20] [--repeat 5] [--fit-pairs 14] [--batch-pairs 8]
    .venv/bin/python benchmarks/run_all.py --only batches [fit ...]
    .venv/bin/python benchmarks/run_all.py --only bigmodels fixed_cost

A full run takes about an hour and a half (the big models about 25 minutes of it, and 14 GB
of RAM at their peak; the team store and the cluster trials about 15 minutes each). ``--only`` re-measures the benchmarks named and keeps
the others' rows as docs/performance.json stores them when it ends (every timing, note,
setting and the run each came from; so --only runs of different benchmarks may overlap);
the page is then written from both, each row saying when it was measured where the runs
differ.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
from typing import Callable, NamedTuple

sys.path.insert(0, os.path.dirname(__file__))

import bench_batches  # noqa: E402
import bench_bigmodels  # noqa: E402
import bench_cluster_trials  # noqa: E402
import bench_fixed_cost  # noqa: E402
import bench_load  # noqa: E402
import bench_processes  # noqa: E402
import bench_fingerprint  # noqa: E402
import bench_fit  # noqa: E402
import bench_portable  # noqa: E402
import bench_snapshot  # noqa: E402
import bench_startup  # noqa: E402
import bench_team_store  # noqa: E402
from common import Comparison, cpu_model  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "docs", "performance.md")
RAW = os.path.join(os.path.dirname(__file__), "..", "docs", "performance.json")  # every timing, to rebuild from


class Benchmark(NamedTuple):
    run: Callable[[dict], list]  # settings -> [Comparison]
    settings: tuple              # the command-line settings it uses
    repetitions: str             # how it repeats, from its settings, for the page


REPEATED = "{repeat} repetitions after one warm-up pair"
BENCHMARKS = {  # in the order they run and appear; startup first, before TensorFlow is imported here
    "startup": Benchmark(lambda s: bench_startup.main(s["repeat"]), ("repeat",), "{repeat} fresh kernels"),
    "load": Benchmark(lambda s: bench_load.main(s["load_against"], s["load_rounds"]), ("load_against", "load_rounds"),
                      "{load_rounds} rounds after one uncounted round, each timing this tree's extension load, "
                      "{load_against}'s, and {load_against}'s again (the A/A control) in fresh processes"),
    "fingerprint": Benchmark(lambda s: bench_fingerprint.main(s["repeat"]), ("repeat",), REPEATED),
    "snapshot": Benchmark(lambda s: bench_snapshot.main(s["repeat"]), ("repeat",), REPEATED),
    "fit": Benchmark(lambda s: bench_fit.main(s["epochs"], s["repeat"], s["fit_pairs"]),
                     ("epochs", "repeat", "fit_pairs"),
                     REPEATED + ", and {fit_pairs} rounds for the `%%repro_fit` vs plain fit rows, each timing the "
                     "plain fit twice: once as the baseline, once as an A/A control that shows how far from 1 "
                     "noise alone takes the ratio"),
    "batches": Benchmark(lambda s: bench_batches.main(s["epochs"], s["batch_pairs"]), ("epochs", "batch_pairs"),
                         "{batch_pairs} rounds after one warm-up round, each timing the generator-fed fit with "
                         "batch observation, without, and without again (the A/A control)"),
    "processes": Benchmark(lambda s: bench_processes.main(s["repeat"]), ("repeat",),
                           "{repeat} rounds after one warm-up in each of two JAX processes, each timing the "
                           "back-and-forth through Session.fit, the usual recipe, and the usual recipe again "
                           "(the A/A control)"),
    "fixed_cost": Benchmark(lambda s: bench_fixed_cost.main(s["fixed_pairs"]), ("fixed_pairs",),
                            "{fixed_pairs} rounds after one warm-up round, cells run as a user runs them "
                            "(store_history=True, silent=False); the short fit's rows time the usual recipe twice "
                            "per round (the A/A control)"),
    "bigmodels": Benchmark(lambda s: bench_bigmodels.main(repeat=s["big_repeat"], cell_pairs=s["cell_pairs"]),
                           ("big_repeat", "cell_pairs"),
                           "{big_repeat} repetitions after one warm-up pair for restore and fingerprint at "
                           "100 MB, 1 GB and 1 GB bfloat16; one real kernel per side for memory; "
                           "the 4 GB model alone, in a process of its own after the others, one repetition"),
    "big_cells": Benchmark(lambda s: bench_bigmodels.cell_rows(s["big_repeat"], s["cell_pairs"]),
                           ("big_repeat", "cell_pairs"),
                           "{cell_pairs} rounds for the 1 GB whole-cell rows, each side on a model of its own and "
                           "timing the usual recipe twice (the A/A control); {big_repeat} repetitions after one "
                           "warm-up pair for the LoRA restore"),
    "cluster_trials": Benchmark(lambda s: bench_cluster_trials.main(s["cluster_trials"], 2, s["cluster_repeat"]),
                                ("cluster_trials", "cluster_repeat"),
                                "{cluster_repeat} rounds after one warm-up round, each timing {cluster_trials} trials "
                                "(2 epochs) on a LocalCluster of 2 worker processes started before the warm-up, in "
                                "the kernel, and in the kernel again (the A/A control); then the first use, "
                                "{cluster_repeat} // 2 + 1 rounds after one uncounted round, the workers started in "
                                "the timed cell (Dask distributed, the dask extra)"),
    "team_store": Benchmark(lambda s: bench_team_store.main(s["epochs"], s["repeat"]), ("epochs", "repeat"),
                            "{repeat} rounds after one uncounted round for the replay rows ({epochs} epochs), "
                            "2 × {repeat} + 1 for the unreachable store's, each timing the baseline twice (the A/A "
                            "control); a moto S3 server on 127.0.0.1 (moto[server], s3fs)"),
    "portable": Benchmark(lambda s: bench_portable.comparisons(s["portable_rounds"], s["portable_epochs"],
                                                               s["portable_backends"]),
                          ("portable_rounds", "portable_epochs", "portable_backends"),
                          "{portable_rounds} rounds, each fitting the conv model natively, at the AVX floor, at the "
                          "AVX2 floor and natively again (the A/A control), {portable_epochs} epochs, each in a "
                          "fresh process (the pins are read at start), on {portable_backends}"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fit-pairs", type=int, default=14, help="rounds for the %%%%repro_fit vs plain fit rows")
    parser.add_argument("--batch-pairs", type=int, default=8, help="rounds for the batch observation rows")
    parser.add_argument("--fixed-pairs", type=int, default=12, help="rounds for the fixed-cost rows")
    parser.add_argument("--big-repeat", type=int, default=3, help="repetitions for the big-model rows")
    parser.add_argument("--load-against", default="bd455b6",
                        help="the revision whose extension load this tree's is timed against (before the #22 layout)")
    parser.add_argument("--load-rounds", type=int, default=80, help="rounds for the extension-load rows")
    parser.add_argument("--cell-pairs", type=int, default=6, help="rounds for the 1 GB whole fit cell rows")
    parser.add_argument("--cluster-trials", type=int, default=8, help="trials per cell for the cluster rows")
    parser.add_argument("--cluster-repeat", type=int, default=3, help="rounds for the cluster rows")
    parser.add_argument("--portable-rounds", type=int, default=3, help="rounds for the portable floors' rows")
    parser.add_argument("--portable-epochs", type=int, default=3, help="epochs per process for the portable rows")
    parser.add_argument("--portable-backends", nargs="+", default=["tensorflow", "jax"],
                        choices=("tensorflow", "jax"), help="Keras backends for the portable rows")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"re-measure only these ({', '.join(BENCHMARKS)}); keep the stored rows of the others")
    args = parser.parse_args()
    only = set(args.only or BENCHMARKS)
    if args.only:
        missing = [name for name in BENCHMARKS if name not in only and name not in load()]
        if missing:
            print(f"warning: {os.path.basename(RAW)} holds no results for {', '.join(missing)}; the page leaves "
                  "them out unless another run stores them before this one ends", file=sys.stderr, flush=True)
    measured = {}
    for name, benchmark in BENCHMARKS.items():
        if name in only:
            settings = {key: getattr(args, key) for key in benchmark.settings}
            measured[name] = dict({"settings": settings, "results": benchmark.run(settings)}, **run_line())
            # stored after each benchmark: one that fails later (e.g. killed for memory) loses only its own rows.
            # The other rows as stored now, not when this run began: a concurrent --only run of other
            # benchmarks may have stored new ones meanwhile, and they are kept.
            stored = load() if args.only else {}
            runs = {key: measured.get(key) or stored.get(key) for key in BENCHMARKS}
            write({key: run for key, run in runs.items() if run is not None})


def run_line() -> dict:
    """When and on what a benchmark ran (TensorFlow is imported by now)."""
    import keras
    import numpy
    import tensorflow as tf

    return {"when": f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}", "cpu": cpu_model(),
            "machine": f"{cpu_model()}, {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                       f"NumPy {numpy.__version__}, TensorFlow {tf.__version__} (CPU), Keras {keras.__version__}"}


def load() -> dict:
    """The stored runs, by benchmark: settings, when, machine, and the results as ``Comparison``s."""
    if not os.path.exists(RAW):
        return {}
    with open(RAW) as handle:
        raw = json.load(handle)
    if "benchmarks" not in raw:
        sys.exit(f"{RAW} is in the format before --only (one run, rows not tied to their benchmark): run everything")
    return {name: dict(run, results=[Comparison(**r) for r in run["results"]])
            for name, run in raw["benchmarks"].items()}


def write(runs: dict) -> None:
    """docs/performance.md from ``runs`` (benchmark -> settings, when, machine, results), and the raw json."""
    groups = {}  # (when, machine) -> benchmarks measured then
    for name, run in runs.items():
        groups.setdefault((run["when"], run["machine"]), []).append(name)
    several = len(groups) > 1
    repetitions = "; ".join(f"{name}: {BENCHMARKS[name].repetitions.format(**run['settings'])}"
                            for name, run in runs.items())
    lines = [
        "# Performance", "",
        "Every figure is a ratio to the plain alternative timed in the same run, the two sides "
        "interleaved in alternating order (A B, B A, ...). Shown: median seconds (min, max) of each side, and the "
        f"median of the per-pair ratios (min–max over the pairs). Repetitions per benchmark: {repetitions}.",
        "Regenerate with `.venv/bin/python benchmarks/run_all.py` (all benchmarks), or re-measure some with "
        f"`--only NAME ...` ({', '.join(BENCHMARKS)}) and keep the others' stored rows.",
        "This page is generated and holds measured values only: the tables, the settings, when and where each "
        "row was measured, and notes computed from the measurements. What they mean is written by hand, dated "
        "and tied to the run it interprets, in [performance-notes.md](performance-notes.md).", "",
    ]
    if several:
        lines += ["Measured in several runs; the table's *measured* column says which:", ""]
        lines += [f"- {when} on {machine}: {', '.join(names)}." for (when, machine), names in groups.items()]
        lines += ["", "| benchmark | measured (CPU) | subject | baseline | ratio | goal |", "|---|---|---|---|---|---|"]
    else:
        (when, machine), = groups
        lines += [f"Run {when} on {machine}.", "",
                  "| benchmark | subject | baseline | ratio | goal |", "|---|---|---|---|---|"]
    cpus = {run.get("cpu", "CPU not recorded") for run in runs.values()}
    if len(cpus) > 1:
        lines += ["", f"⚠ These rows come from {len(cpus)} CPUs ({'; '.join(sorted(cpus))}): compare a row only "
                  "with rows of the same CPU.", ""]
    for run in runs.values():
        for result in run["results"]:
            lines.append(result.row(f"{run['when']} ({run.get('cpu', 'CPU not recorded')})") if several else result.row())
    results = [result for run in runs.values() for result in run["results"]]
    lines += ["", "## Notes", ""] + [f"- {r.name}: {r.note}" for r in results if r.note]
    with open(OUT, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(RAW, "w") as handle:
        json.dump({"benchmarks": {name: dict(run, results=[dataclasses.asdict(r) for r in run["results"]])
                                  for name, run in runs.items()}}, handle, indent=1)
    print(f"wrote {os.path.abspath(OUT)} and {os.path.basename(RAW)}")


if __name__ == "__main__":
    main()
