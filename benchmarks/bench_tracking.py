"""MLflow tracking's cost: ``%%repro_fit`` with ``ReproMagics.mlflow`` on vs off.

The FD001 MLP fit of bench_fit, a SQLite tracking store in a temporary folder (found
through MLFLOW_TRACKING_URI, as MLflow finds it), rounds interleaved with an A/A control
(off vs off). The tracker is switched by the session's listener list, outside the timed
cells, so each side times the fit cell alone::

    .venv/bin/python benchmarks/bench_tracking.py [--epochs 20] [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from bench_fit import FIT, PREPARE, run, shell
from common import CMAPSS_DIR, Comparison, interleaved


def main(epochs: int = 20, repeat: int = 5) -> list[Comparison]:
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tempfile.mkdtemp(prefix='repro-bench-mlflow-')}/mlflow.db"
    from jupyter_repro.tracking import MlflowTracker

    ip = shell()
    run(ip, "%repro_seed 42")
    data_dir = CMAPSS_DIR if os.path.isfile(os.path.join(CMAPSS_DIR, "train_FD001.txt")) else None
    run(ip, PREPARE.format(data_dir=data_dir))
    run(ip, "%repro_snapshot model")
    session = ip.magics_manager.registry["ReproMagics"].session
    tracker = MlflowTracker()
    cell = "%%repro_fit model\n" + FIT.format(epochs=epochs)

    def fit(listeners):
        session.listeners = listeners
        run(ip, cell)

    row = interleaved(f"`%%repro_fit` with MLflow tracking vs without (FD001 MLP, {epochs} epochs, SQLite store)",
                      lambda: fit([tracker]), lambda: fit([]), repeat, control=lambda: fit([]))
    extra = statistics.median(row.subject) - statistics.median(row.baseline)
    row.note = (f"{extra * 1e3:+.0f} ms per fit (medians); A/A control (off vs off) ratio {row.aa('').ratio:.3f}; "
                f"runs logged: {len(__import__('mlflow').search_runs(search_all_experiments=True, output_format='list', max_results=1000))}")
    print(row.note)
    return [row, row.aa(f"A/A control: without tracking vs itself ({epochs} epochs)")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    for comparison in main(options.epochs, options.repeat):
        print(comparison.row())
