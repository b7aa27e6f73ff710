"""Run every benchmark and write docs/performance.md.

    .venv/bin/python benchmarks/run_all.py [--epochs 20] [--repeat 5]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(__file__))

import bench_fingerprint  # noqa: E402
import bench_fit  # noqa: E402
import bench_snapshot  # noqa: E402
import bench_startup  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "docs", "performance.md")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results = bench_startup.main(args.repeat)          # before TensorFlow is imported here
    results += bench_fingerprint.main(args.repeat)
    results += bench_snapshot.main(args.repeat)
    results += bench_fit.main(args.epochs, args.repeat)
    write(results, args)


def write(results, args):
    import keras
    import numpy
    import tensorflow as tf

    lines = [
        "# Performance", "",
        "Every figure is a ratio to the plain alternative timed in the same run, the two sides "
        "interleaved in alternating order (A B, B A, ...). Shown: median seconds (min, max) of each side, and the median of "
        f"the per-pair ratios (min–max over the pairs); {args.repeat} repetitions after one warm-up pair.",
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
    print(f"wrote {os.path.abspath(OUT)}")


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

- **`%%repro_fit` vs a plain fit: 1.02–1.07 over five full runs (1.04 in the table above);
  the goal of 1.02 is not met reliably, and the cause is not found.** What the package adds
  outside `model.fit` is small: its fixed cost per fit (restore, recompile, reseed,
  fingerprints, ledger, environment; the "no-op body" row) is 9 ms, 0.07% of a 20-epoch FD001
  fit. The rest is measured *inside* `model.fit` (timed in the cell itself, in a separate
  check: 1.046 and, with the baseline reseeded to compute the very same bits, 1.034), for a
  computation that is bit-identical on both sides. Ruled out: running the cell body through
  a nested `shell.run_cell` (the control row: 0.998 with no package code), the order within a
  pair (pairs alternate), different shuffles (same bits). Not yet ruled out: the `model.fit`
  wrapper that records the inputs (an instance attribute for the cell's duration), the
  ledger records held during the fit (more work for the garbage collector), and plain noise
  (pairs spread ±5–10% on this shared 2-core machine; a 5-epoch check read 0.97). Next step:
  more pairs, and py-spy on both sides.
- **Two checks after the table above** (20-epoch fits, six alternating pairs each, the
  baseline computing the same bits): with the ledger read after the fit instead of before
  (now the code), 1.021 inside `model.fit`; with, in addition, the input-recording wrapper
  on `model.fit` switched off (a diagnostic patch, not the code), 1.012. Suggestive that the
  wrapper costs something per step, not proven at this noise level: the next thing to test.
- **`tf.Variable.assign` from NumPy** was reported at about 20× a NumPy copy (issue #6); on
  this machine it measured 1.4× for 400 MB, so no backend-tensor snapshot was needed.
- **Op determinism costs nothing measurable** for this model on CPU.
"""

if __name__ == "__main__":
    main()
