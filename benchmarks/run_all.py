"""Run every benchmark and write docs/performance.md.

    .venv/bin/python benchmarks/run_all.py [--epochs 20] [--repeat 5] [--fit-pairs 14]
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(__file__))

import bench_fingerprint  # noqa: E402
import bench_fit  # noqa: E402
import bench_snapshot  # noqa: E402
import bench_startup  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "docs", "performance.md")
RAW = os.path.join(os.path.dirname(__file__), "..", "docs", "performance.json")  # every timing, to recompute from


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fit-pairs", type=int, default=14, help="pairs for the %%%%repro_fit vs plain fit rows")
    args = parser.parse_args()
    results = bench_startup.main(args.repeat)          # before TensorFlow is imported here
    results += bench_fingerprint.main(args.repeat)
    results += bench_snapshot.main(args.repeat)
    results += bench_fit.main(args.epochs, args.repeat, args.fit_pairs)
    write(results, args)


def write(results, args):
    import keras
    import numpy
    import tensorflow as tf

    lines = [
        "# Performance", "",
        "Every figure is a ratio to the plain alternative timed in the same run, the two sides "
        "interleaved in alternating order (A B, B A, ...). Shown: median seconds (min, max) of each side, and the median of "
        f"the per-pair ratios (min–max over the pairs); {args.repeat} repetitions after one warm-up pair "
        f"({args.fit_pairs} rounds for the `%%repro_fit` vs plain fit rows, each round timing the plain fit twice: "
        "once as the baseline, once as an A/A control that shows how far from 1 noise alone takes the ratio).",
        "Regenerate with `.venv/bin/python benchmarks/run_all.py`.", "",
        f"Run {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} on {platform.platform()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, NumPy {numpy.__version__}, "
        f"TensorFlow {tf.__version__} (CPU), Keras {keras.__version__}.", "",
        "| benchmark | subject | baseline | ratio | goal |", "|---|---|---|---|---|",
    ]
    lines += [r.row() for r in results]
    lines += ["", "## Notes", ""] + [f"- {r.name}: {r.note}" for r in results if r.note]
    with open(OUT, "w") as handle:
        handle.write("\n".join(lines) + "\n" + NOTES)
    with open(RAW, "w") as handle:
        json.dump({"run": lines[5], "results": [dataclasses.asdict(r) for r in results]}, handle, indent=1)
    print(f"wrote {os.path.abspath(OUT)} and {os.path.basename(RAW)}")


NOTES = """
## How the goals are met

- **Restore** assigns each variable from a NumPy array the snapshot owns: one copy into
  the variable's buffer. Keeping the snapshot as backend tensors was measured too (assigning
  a tensor only swaps a buffer under TensorFlow's copy-on-write), but the NumPy form is
  what the on-disk store and the cache need, and it already meets the goal here.
- **Capture** takes `Variable.numpy()`, which on TensorFlow returns an array that owns its
  memory: one copy. An earlier version copied it again (2.0× a NumPy copy).
- **Fingerprints** are XXH3-128 (`xxhash`), a single pass at memory speed; SHA-256 is shown
  for comparison.
- **Start**: loading the extension imports IPython-side code only; NumPy, TensorFlow and
  Keras are seeded by an import hook when the user imports them. Before NumPy was moved
  behind the hook, start measured 96 ms over an empty cell, 40 ms of it importing NumPy.

## Findings

- **`%%repro_fit` vs a plain fit: the goal of 1.02 is not met reliably, and the remainder is
  located but not explained.** The run of 2026-11-27 07:15 UTC: 1.10 wall, 1.04 process CPU time (ten pairs). Earlier
  full runs read 1.02–1.07 wall. What is known, each from a measurement:
  - *The package's own work outside `model.fit`* is 9 ms per fit (the "no-op body" row), 0.07%
    of a 20-epoch fit: restore, recompile, reseed, fingerprints, ledger, environment.
  - *Inside `model.fit` the work is the same.* Both sides compute the same bits (checked each
    run); the Python and C calls made inside `model.fit`, counted with `sys.setprofile`, differ
    by 338 of 2.73 million (0.012%): binding and fingerprinting the fit's arguments, once per
    fit. Both sides trace the train and test steps the same number of times (3 per fit,
    counted by wrapping `train_step`/`test_step` in a diagnostic run).
  - *Stalls dominate the wall-clock spread.* On this 2-vCPU machine whole epochs take twice
    their usual wall time (+0.6 s) while their CPU time stays the same: the process is not
    running. They are not the package's: they were in neither variant's fits more than the
    other's across diagnostic runs (plain 6 / `%%repro_fit` 7 in five 20-epoch fits each; 5 /
    10 and 1 / 2 in earlier runs), though this run's ten pairs happened to put all 13 in the
    `%%repro_fit` side (8 s lost). They are not full garbage collections (counted with
    `gc.callbacks`: one in eight fits on each side) and not retracing.
  - *The first epoch is 75–120 ms slower with `%%repro_fit` in every run, and that part is
    IPython's, not the package's*: the same plain cell run through a nested `shell.run_cell`
    by a cell magic with no package code (variant N) is 4.5% slower in its first epoch, while
    the same cell run by a cell magic with `exec()` instead (variant E) is not (0.999; two
    2-epoch runs of ten rounds: R 1.062, N 1.045–1.046, E 0.999, no nesting 0.995–1.003).
    That is 0.4–0.9% of a 20-epoch fit. `%%repro_fit` runs the fit cell with `run_cell` (as
    `%%capture` does) so that the cell keeps IPython's syntax, display and error handling;
    running it the way `%%time` does (transform, compile, `exec`, display the last value)
    would remove this part. Not done in this session: it changes how errors and interrupts
    in the fit cell reach the user, which the real-kernel tests pin down.
  - *Later epochs* read 1.00–1.04 in wall and CPU time depending on the run, with identical
    calls; that part is neither explained nor shown to be noise.
  - *Ruled out by bisection* (`benchmarks/diagnose_fit.py`, 8–20-epoch fits, rotating order;
    median per-pair ratio of the fastest later epoch, P = plain): the input-recording wrapper
    on `model.fit` off (1.012–1.021), the ledger off (1.005), the snapshot's restore done in a
    plain cell (0.989), the optimizer rebuilt from its config (1.005), the Seeder's reseed
    (1.003), a nested `run_cell` without the package (1.006), 40 extra Python frames (0.992),
    garbage collection off during the fit (1.009). No single step of the magic carries the
    later-epoch difference; each measures within ±1.5% of the plain fit, the noise floor of
    these runs.
  - Next step for whoever takes this on: run the fit cell `%%time`-style and measure again
    (`diagnose_fit.py --variants P,R,E`); then hardware counters (`perf stat`; not available
    in this VM) or a quiet machine for the later epochs.
- **`tf.Variable.assign` from NumPy** was reported at about 20× a NumPy copy (issue #6); on
  this machine it measured 1.4× for 400 MB, so no backend-tensor snapshot was needed.
- **Op determinism costs nothing measurable** for this model on CPU.
"""

if __name__ == "__main__":
    main()
