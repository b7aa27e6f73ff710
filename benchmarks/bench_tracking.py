"""MLflow tracking's cost: ``%%repro_fit`` with ``ReproMagics.mlflow`` on vs off.

The FD001 MLP fit of bench_fit, a SQLite tracking store in a temporary folder (found
through MLFLOW_TRACKING_URI, as MLflow finds it), rounds interleaved with an A/A control
(off vs off). The tracker is switched by the session's listener list, outside the timed
cells, so each side times the fit cell alone. The time spent inside the tracker's own
calls (starting the run; logging parameters, metrics and tags, ending it) is clocked too:
on a busy machine the ratio's noise can exceed the tracker's cost, this cannot::

    .venv/bin/python benchmarks/bench_tracking.py [--epochs 20] [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from bench_fit import FIT, PREPARE, run, shell
from common import CMAPSS_DIR, Comparison, interleaved


class Clocked:
    """A listener that times the calls it passes on to ``tracker`` (wall seconds per run)."""

    def __init__(self, tracker):
        self.tracker, self.seconds, self._started = tracker, [], 0.0

    def run_started(self, report):
        began = time.perf_counter()
        self.tracker.run_started(report)
        self._started = time.perf_counter() - began

    def run_finished(self, report, error):
        began = time.perf_counter()
        self.tracker.run_finished(report, error)
        self.seconds.append(self._started + time.perf_counter() - began)


def main(epochs: int = 20, repeat: int = 5) -> list[Comparison]:
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tempfile.mkdtemp(prefix='repro-bench-mlflow-')}/mlflow.db"
    from jupyter_repro.tracking import MlflowTracker

    ip = shell()
    run(ip, "%repro_seed 42")
    data_dir = CMAPSS_DIR if os.path.isfile(os.path.join(CMAPSS_DIR, "train_FD001.txt")) else None
    run(ip, PREPARE.format(data_dir=data_dir))
    run(ip, "%repro_snapshot model")
    session = ip.magics_manager.registry["ReproMagics"].session
    tracker = Clocked(MlflowTracker())
    cell = "%%repro_fit model\n" + FIT.format(epochs=epochs)

    def fit(listeners):
        session.listeners = listeners
        run(ip, cell)

    row = interleaved(f"`%%repro_fit` with MLflow tracking vs without (FD001 MLP, {epochs} epochs, SQLite store)",
                      lambda: fit([tracker]), lambda: fit([]), repeat, control=lambda: fit([]))
    extra = statistics.median(row.subject) - statistics.median(row.baseline)
    inside = statistics.median(tracker.seconds[1:])  # the first run creates the store's tables
    row.note = (f"{extra * 1e3:+.0f} ms per fit (medians); A/A control (off vs off) ratio {row.aa('').ratio:.3f}; "
                f"inside the tracker: median {inside * 1e3:.0f} ms per fit (min {min(tracker.seconds[1:]) * 1e3:.0f}, "
                f"max {max(tracker.seconds[1:]) * 1e3:.0f}) = {inside / statistics.median(row.baseline):.2%} of the fit; "
                f"runs logged: {len(tracker.seconds)}")
    print(row.note)
    return [row, row.aa(f"A/A control: without tracking vs itself ({epochs} epochs)")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    for comparison in main(options.epochs, options.repeat):
        print(comparison.row())
