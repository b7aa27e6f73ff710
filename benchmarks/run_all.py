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

- **Pair order matters more than the package.** With subject-then-baseline in every pair,
  `%%repro_fit` measured 1.02 and 1.05 against plain fits in two runs; a 5-epoch check with
  the order alternated gave 0.97. The package's own fixed cost per fit (restore, recompile,
  reseed, fingerprint, ledger, environment; the "no-op body" row) is under 2 ms, 0.01% of a
  20-epoch FD001 fit. Pairs now alternate their order.
- **`tf.Variable.assign` from NumPy** was reported at about 20× a NumPy copy (issue #6); on
  this machine it measured 1.4× for 400 MB, so no backend-tensor snapshot was needed.
- **Op determinism costs nothing measurable** for this model on CPU.
"""

if __name__ == "__main__":
    main()
