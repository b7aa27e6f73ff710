"""Input fingerprinting throughput on 1 GB of arrays vs a NumPy copy (and SHA-256)."""
from __future__ import annotations

import hashlib

from common import Comparison, interleaved, timed


def main(repeat: int = 5) -> list[Comparison]:
    import numpy as np

    from jupyter_repro.values.fingerprint import fingerprint_value

    rng = np.random.default_rng(0)
    arrays = [rng.random(2**26, dtype="float32") for _ in range(4)]   # 4 × 256 MiB = 1 GiB
    gigabytes = sum(a.nbytes for a in arrays) / 1e9
    xxh = interleaved(f"XXH3-128 fingerprint of {gigabytes:.2f} GB vs NumPy copy",
                      lambda: fingerprint_value(arrays), lambda: [np.copy(a) for a in arrays], repeat,
                      goal="≥ 5 GB/s")
    sha = [timed(lambda: [hashlib.sha256(memoryview(a).cast("B")).digest() for a in arrays]) for _ in range(2)]
    xxh.note = (f"{gigabytes / min(xxh.subject):.1f} GB/s (best), {gigabytes / sorted(xxh.subject)[len(xxh.subject) // 2]:.1f} "
                f"GB/s (median); NumPy copy {gigabytes / sorted(xxh.baseline)[len(xxh.baseline) // 2]:.1f} GB/s; "
                f"SHA-256 {gigabytes / min(sha):.2f} GB/s")
    print(xxh.note)
    return [xxh]


if __name__ == "__main__":
    main()
