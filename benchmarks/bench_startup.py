"""Extension start in a fresh kernel where TensorFlow is not imported, vs an empty cell."""
from __future__ import annotations

import os
import sys
import time

from common import Comparison

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))


def main(repeat: int = 5) -> list[Comparison]:
    from kernel import Kernel

    subject, baseline, imported = [], [], []
    for _ in range(repeat):
        with Kernel() as kernel:
            kernel.run("pass")  # warm the channel
            started = time.perf_counter()
            kernel.run("pass")
            baseline.append(time.perf_counter() - started)
            started = time.perf_counter()
            kernel.run("%load_ext jupyter_repro\n%repro_seed 42")
            subject.append(time.perf_counter() - started)
            imported.append(kernel.value('"tensorflow" in __import__("sys").modules'))
    result = Comparison("`%load_ext jupyter_repro` + `%repro_seed 42` vs an empty cell (fresh kernel)",
                        subject, baseline, goal="≤ 100 ms more; TensorFlow not imported")
    extra = sorted(s - b for s, b in zip(subject, baseline))[len(subject) // 2]
    result.note = f"{extra * 1e3:.1f} ms more than an empty cell (median); TensorFlow imported by it: {any(imported)}"
    print(result, "\n" + result.note)
    return [result]


if __name__ == "__main__":
    main()
