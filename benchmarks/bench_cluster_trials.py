"""Seed trials on a Dask cluster against the same trials in the kernel, on the same cores.

    python benchmarks/bench_cluster_trials.py [--trials 8] [--epochs 2] [--repeat 3]

The FD001 notebook (NASA's files under CMAPSS_DIR, else the synthetic fleet) in an
in-process IPython shell with the extension loaded: its MLP (Dense 16 → 32 → 64 → 1, Adam,
batch 32). Interleaved rounds (``common.interleaved``) time three cells: ``%%repro_fit
--trials N --on <a LocalCluster of 2 worker processes on 127.0.0.1>``, the same cell in the
kernel (sequential), and the kernel again (the A/A control). The workers are started once,
before the warm-up round, as a notebook's ``--on local`` cluster stays up between cells.
Every round also checks that the cluster's table and per-seed results equal the kernel's.

Then the cost of shipping one trial: the bytes sent once per worker (the cell's shipment:
its values, the architecture, compile settings) and per trial (the initial state), the
seconds to pack and scatter them, against the fit's own seconds on a worker.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))

from common import data_dir, interleaved, median_interval, run_cell, user_shell, verdict  # noqa: E402


def notebook(ip, epochs: int) -> str:
    """Run the FD001 notebook's cells up to its fit; the fit cell's body."""
    import nbformat

    from jupyter_repro.demo import NOTEBOOK

    os.environ["REPRO_EPOCHS"] = str(epochs)
    if data_dir():
        os.environ["CMAPSS_DIR"] = data_dir()
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    first = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    for cell in cells[:first]:
        if cell.cell_type == "code":
            run_cell(ip, cell.source)
    run_cell(ip, "alpha = 0.4")
    run_cell(ip, next(c.source for c in cells if "preprocess" in c.metadata.get("tags", [])))
    return next(c.source for c in cells if "fit" in c.metadata.get("tags", [])).split("\n", 1)[1]


def shipping(ip, client, body: str) -> dict:
    """Bytes and seconds of sending one cell's trials, against the fit on a worker."""
    import cloudpickle

    from jupyter_repro.run.shipment import pack
    from jupyter_repro.run.trials import initial_state

    magics = ip.magics_manager.registry["ReproMagics"]
    session, model = magics.session, ip.user_ns["model"]
    snapshot = session.snapshot_for("model")
    started = time.perf_counter()
    recipe, _ = session.recipe_for(model, snapshot)
    shipment, large = pack(model, snapshot, recipe, ip.transform_cell(body), ip.user_ns, ip.user_ns_hidden)
    packed = time.perf_counter() - started
    started = time.perf_counter()
    futures = [client.scatter(shipment, broadcast=True, hash=False),
               *(client.scatter(v, broadcast=True, hash=True) for v in large.values())]
    scattered = time.perf_counter() - started
    client.cancel(futures)
    started = time.perf_counter()
    state = initial_state(model, snapshot, 43)
    state_seconds = time.perf_counter() - started
    return {"shipment bytes (once per worker)": len(cloudpickle.dumps(shipment)),
            "large values bytes (once per worker)": sum(getattr(v, "nbytes", 0) for v in large.values()),
            "state bytes (per trial)": sum(a.nbytes for a in state),
            "pack seconds (once)": packed, "scatter seconds (once, 2 workers)": scattered,
            "initial state seconds (per trial, in the kernel)": state_seconds}


def main(trials: int = 8, epochs: int = 2, repeat: int = 3):
    from distributed import Client

    from jupyter_repro.run.arithmetic import _cpu_name
    from jupyter_repro.run.cluster import local_cluster

    print(f"CPU: {_cpu_name()}, {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; "
          f"data: {'FD001 ' + data_dir() if data_dir() else 'synthetic fleet'}", flush=True)
    ip = user_shell(tempfile.mkdtemp(prefix="bench-cluster-"), seed=42)
    body = notebook(ip, epochs)
    run_cell(ip, "%repro_snapshot model")
    cluster = local_cluster(2)
    client = Client(cluster, set_as_default=False)
    ip.user_ns["ADDRESS"] = cluster.scheduler_address
    cell = f"%%repro_fit model --trials {trials}\n{body}"
    tables = {}

    def side(name, options=""):
        def run():
            run_cell(ip, cell.replace(f"--trials {trials}", f"--trials {trials} {options}"))
            tables.setdefault(name, []).append(ip.user_ns["_"])
        return run

    comparison = interleaved(f"{trials} trials: 2 local workers / in the kernel", side("cluster", "--on $ADDRESS"),
                             side("kernel"), repeat=repeat, goal="≤ 1/1.7 = 0.588 (limit 0.5)",
                             control=side("control"))
    same = all(t.equals(tables["kernel"][0]) and t.attrs["runs"].keys() == tables["kernel"][0].attrs["runs"].keys()
               and all(t.attrs["runs"][s]["result"] == tables["kernel"][0].attrs["runs"][s]["result"]
                       for s in t.attrs["runs"]) for t in tables["cluster"] + tables["control"])
    low, high = median_interval(comparison.ratios)
    print(f"speed-up {1 / comparison.ratio:.2f}x (ratio {comparison.ratio:.3f}, 95% interval {low:.3f}-{high:.3f}: "
          f"{verdict(low, high, 1 / 1.7)}); A/A control {comparison.aa('A/A').ratio:.3f}; "
          f"every table and result equal to the kernel's: {same}")
    fits = [run["seconds"] for t in tables["cluster"][1:] for run in t.attrs["runs"].values()]  # [0]: the warm-up
    print(f"fit on a worker: median {statistics.median(fits):.2f} s per trial; "
          f"cluster wall per trial {statistics.median(comparison.subject) / trials:.2f} s, "
          f"kernel wall per trial {statistics.median(comparison.baseline) / trials:.2f} s")
    for name, value in shipping(ip, client, body).items():
        print(f"  {name}: {value:,.4f}" if isinstance(value, float) else f"  {name}: {value:,}")
    client.close()
    cluster.close()
    return comparison


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    main(**vars(parser.parse_args()))
