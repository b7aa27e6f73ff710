"""Batch observation (issue #13): the cost of hashing every batch a Python generator feeds
``model.fit``, against the same fit fed the bare generator.

    .venv/bin/python benchmarks/bench_batches.py [EPOCHS] [PAIRS]

Data that cannot be hashed before training (a generator, a PyDataset, a tf.data pipeline
that runs Python, a DataLoader) reaches Keras through ``observed.Observed.wrap``, which
hashes each batch as Keras reads it. Here both sides run in one process on bench_fit's
FD001 MLP, from the same seed and restored weights (bench_fit's plain recipe), fed by the
same plain generator; the subject wraps it and takes the fingerprints after the fit, as
``fit.FitCalls`` does; the baseline hands the generator straight to Keras; an A/A control
times the baseline again in the same rounds.
"""
from __future__ import annotations

import statistics
import time
import timeit

from bench_fit import FIT, PLAIN, PREPARE, interval_note
from common import Comparison, data_dir, interleaved

GOAL = "≤ 1.01"
BATCH = 32


def batches(X, y, size: int = BATCH):
    """The generator a notebook would write: ``(X[i:i+size], y[i:i+size])``, forever."""
    while True:
        for i in range(0, len(X), size):
            yield X[i:i + size], y[i:i + size]


def digest_microseconds(batch, number: int = 20_000, repeat: int = 7) -> float:
    """``observed.batch_digest`` of one batch in a tight loop, in the thread's CPU time (time the
    process spends waiting for a core on this shared machine does not count): the best of
    ``repeat`` loops, per call."""
    from jupyter_repro.run.observed import batch_digest

    loops = timeit.repeat(lambda: batch_digest(batch), number=number, repeat=repeat, timer=time.thread_time)
    return min(loops) / number * 1e6


def hashing_inside(fit) -> tuple:
    """Run ``fit()`` with ``observed.batch_digest`` timed where Keras calls it (the CPU time of
    the thread that reads the batches): (seconds hashing, batches, the fit's process CPU seconds)."""
    from jupyter_repro.run import observed

    real, spent = observed.batch_digest, []

    def timed_digest(batch):
        started = time.thread_time()
        try:
            return real(batch)
        finally:
            spent.append(time.thread_time() - started)

    observed.batch_digest = timed_digest  # _Stream.add looks it up in the module at each call
    try:
        cpu = time.process_time()
        fit()
        cpu = time.process_time() - cpu
    finally:
        observed.batch_digest = real
    return sum(spent), len(spent), cpu


def main(epochs: int = 20, pairs: int = 8) -> list[Comparison]:
    from jupyter_repro.seeding.seeder import Seeder

    seeder = Seeder()
    seeder.seed_everything(42)  # op determinism, as %repro_seed 42 sets it before the notebook imports
    namespace: dict = {}
    exec(PREPARE.format(data_dir=data_dir()), namespace)  # noqa: S102 -- bench_fit's FD001 preparation
    from jupyter_repro.run.observed import Observed
    from jupyter_repro.model.snapshot import model_fingerprint

    model, X, y = namespace["model"], namespace["X_fit"], namespace["y_fit"]
    steps_per_epoch = -(-len(X) // BATCH)
    restore = PLAIN.replace(FIT, "")  # reseed, compile with a fresh Adam, set the initial weights
    seen = {"subject": [], "baseline": [], "control": [], "timed": []}  # per fit: weights, x, batches hashed, steps

    def fit(side: str, observe: bool) -> None:
        exec(restore, namespace)  # noqa: S102
        data = batches(X, y)
        observed = Observed() if observe else None
        if observe:
            data = observed.wrap("x", data)
        try:
            history = model.fit(data, steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=0)
        finally:
            if observe:
                observed.close()
        steps = history.params["steps"] * len(history.epoch)  # as FitCalls counts them
        x = observed.fingerprints(steps)["x"] if observe else None
        hashed = len(observed.streams[0][1].digests) if observe else 0
        seen[side].append((model_fingerprint(model), x, hashed, steps))

    name = f"batch observation on vs off: FD001 MLP fed by a Python generator ({epochs} epochs)"
    main_row = interleaved(f"{name}, wall", lambda: fit("subject", True), lambda: fit("baseline", False), pairs,
                           goal=GOAL, control=lambda: fit("control", False))
    cpu_row = main_row.cpu(f"{name}, process CPU time", goal=GOAL)
    print(cpu_row)
    control = main_row.aa(f"A/A control: the generator-fed fit vs itself, timed in the same rounds ({epochs} epochs), wall")

    per_batch = digest_microseconds((X[:BATCH], y[:BATCH]))
    inside, digests, fit_cpu = hashing_inside(lambda: fit("timed", True))  # one more observed fit, not in the rows
    hashed = [s[2] for s in seen["subject"]]
    steps = seen["subject"][0][3]
    weights = {s[0] for fits in seen.values() for s in fits}
    inputs = {s[1] for s in seen["subject"] + seen["timed"]}
    fits = sum(len(f) for f in seen.values())
    estimate = statistics.median(hashed) * per_batch * 1e-6
    data = "NASA's FD001" if not namespace["data"].synthetic else "a synthetic FD001-like fleet (NASA's files not found)"
    main_row.note = (
        f"{interval_note(main_row)}; data: {data}, {len(X):,} rows, {steps_per_epoch} batches of {BATCH} per epoch; "
        f"batches hashed per fit: {statistics.median(hashed):,.0f} (min {min(hashed):,}, max {max(hashed):,}) "
        f"for {steps:,} training steps (more where Keras read ahead); per batch, `observed.batch_digest` in a tight "
        f"loop: {per_batch:.1f} µs of thread CPU time (the batches of X are "
        f"{'' if X.flags.c_contiguous else 'not '}C-contiguous), times the median batches hashed: "
        f"{estimate * 1e3:.0f} ms = {estimate / statistics.median(main_row.baseline_cpu):.2%} of the baseline's median "
        f"fit in process CPU time; timed inside one more observed fit (thread CPU time in `batch_digest`, where "
        f"Keras's reader thread calls it): {inside * 1e3:.0f} ms for {digests:,} batches = "
        f"{inside / digests * 1e6:.1f} µs per batch = {inside / fit_cpu:.2%} of that fit's process CPU time; "
        f"final weights the same on both sides: {len(weights) == 1} "
        f"({fits} fits, warm-up included); x's fingerprint the same in every fit: {len(inputs) == 1}")
    cpu_row.note = interval_note(cpu_row)
    control.note = f"{interval_note(control)}; CPU time ratio {control.cpu('').ratio:.3f}"
    for row in (main_row, cpu_row, control):
        print(f"{row.name}: {row.note}", flush=True)
    seeder.close()
    return [main_row, cpu_row, control]


if __name__ == "__main__":
    import sys

    main(*(int(a) for a in sys.argv[1:]))
