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
seconds to pack and scatter them, against the fit's own seconds on a worker. Then the first
use: the same cell with the workers started inside it (a kernel's first ``--on local``),
against the kernel. ``run_all.py --only cluster_trials`` puts the rows in docs/performance.md.
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

from common import (Comparison, cpu_model, data_dir, interleaved, median_interval, run_cell,  # noqa: E402
                    user_shell, verdict)


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


def first_use(ip, body: str, trials: int, repeat: int) -> Comparison:
    """A kernel's first ``--on local`` cell: its workers (one per CPU: 2 here) started inside
    the cell, then the trials; against the same trials in the kernel, alternating order, one
    round uncounted. Stopping the workers after each round (the kernel's end) is not timed."""
    from jupyter_repro.run.cluster import close_local

    cell = f"%%repro_fit model --trials {trials}\n{body}"

    rounds = []
    for i in range(repeat + 1):
        times = {}
        for side in (("cluster", "kernel") if i % 2 else ("kernel", "cluster")):
            began = time.perf_counter()
            run_cell(ip, cell.replace(f"--trials {trials}", f"--trials {trials} --on local") if side == "cluster"
                     else cell)
            times[side] = time.perf_counter() - began
            close_local()
        rounds.append(times)
    rounds = rounds[1:]
    row = Comparison(f"first use: {trials} trials, `--on local` starting its 2 workers in the cell / in the kernel",
                     [r["cluster"] for r in rounds], [r["kernel"] for r in rounds], "≤ 0.588 (≥ 1.7×)")
    print(row, flush=True)
    return row


def main(trials: int = 8, epochs: int = 2, repeat: int = 3) -> list:
    from distributed import Client

    from jupyter_repro.run.cluster import local_cluster

    load = [os.getloadavg()[0]]
    print(f"CPU: {cpu_model()}, {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; "
          f"load {load[0]:.2f}; data: {'FD001 ' + data_dir() if data_dir() else 'synthetic fleet'}", flush=True)
    ip = user_shell(tempfile.mkdtemp(prefix="bench-cluster-"), seed=42)
    body = notebook(ip, epochs)
    run_cell(ip, "%repro_snapshot model")
    began = time.perf_counter()
    cluster = local_cluster(2)
    client = Client(cluster, set_as_default=False)
    start_seconds = time.perf_counter() - began
    ip.user_ns["ADDRESS"] = cluster.scheduler_address
    cell = f"%%repro_fit model --trials {trials}\n{body}"
    tables = {}

    def side(name, options=""):
        def run():
            run_cell(ip, cell.replace(f"--trials {trials}", f"--trials {trials} {options}"))
            tables.setdefault(name, []).append(ip.user_ns["_"])
        return run

    steady = interleaved(f"steady state: {trials} trials of the FD001 MLP, 2 local workers (already started) / "
                         "in the kernel", side("cluster", "--on $ADDRESS"), side("kernel"), repeat=repeat,
                         goal="≤ 0.588 (≥ 1.7×; limit 0.5)", control=side("control"))
    kernel = tables["kernel"][0]
    same = all(t.equals(kernel) and {s: r["result"] for s, r in t.attrs["runs"].items()}
               == {s: r["result"] for s, r in kernel.attrs["runs"].items()}
               for t in tables["cluster"] + tables["control"] + tables["kernel"])
    load.append(os.getloadavg()[0])
    low, high = median_interval(steady.ratios)
    cost = shipping(ip, client, body)
    fit = statistics.median(run["seconds"] for table in tables["cluster"][1:]  # [0]: the warm-up round
                            for run in table.attrs["runs"].values())
    threads = tables["cluster"][-1].attrs["runs"]
    steady.note = (f"{1 / steady.ratio:.2f}× faster (95% interval of the median ratio {low:.3f}–{high:.3f}: "
                   f"{verdict(low, high, 1 / 1.7)}); A/A control {steady.aa('A/A').ratio:.3f}; every table and "
                   f"per-seed result fingerprint equal to the kernel's: {same}; arithmetic differences reported: "
                   f"{sorted({r['arithmetic'] for r in threads.values() if r['arithmetic']}) or 'none'}; "
                   f"per trial: wall {statistics.median(steady.subject) / trials:.2f} s on the cluster, "
                   f"{statistics.median(steady.baseline) / trials:.2f} s in the kernel, the fit on a worker "
                   f"{fit:.2f} s (median); {epochs} epochs, batch 32; the workers' start {start_seconds:.2f} s; "
                   f"load average (1 min) {load[0]:.2f} before, {load[1]:.2f} after")
    ship = (f"per cell: the shipment {cost['shipment bytes (once per worker)']:,} bytes and "
            f"{cost['large values bytes (once per worker)']:,} bytes of large values, each sent once per worker, "
            f"packed in {cost['pack seconds (once)']:.3f} s and scattered to 2 workers in "
            f"{cost['scatter seconds (once, 2 workers)']:.3f} s; per trial: the initial state "
            f"{cost['state bytes (per trial)']:,} bytes, taken in the kernel in "
            f"{cost['initial state seconds (per trial, in the kernel)']:.3f} s; against the fit on a worker, "
            f"{fit:.2f} s: {(cost['pack seconds (once)'] + cost['scatter seconds (once, 2 workers)']) / trials / fit:.2%} "
            "per trial for packing and scattering")
    shipped = Comparison(f"shipping one trial (pack + scatter per trial, and the initial state) / its fit on a worker",
                         [(cost['pack seconds (once)'] + cost['scatter seconds (once, 2 workers)']) / trials
                          + cost['initial state seconds (per trial, in the kernel)']], [fit], "≪ 1", note=ship)
    client.close()
    cluster.close()
    first = first_use(ip, body, trials, max(1, repeat // 2 + 1))
    load.append(os.getloadavg()[0])
    low, high = median_interval(first.ratios)
    first.note = (f"{1 / first.ratio:.2f}× faster (95% interval {low:.3f}–{high:.3f}: {verdict(low, high, 1 / 1.7)}); "
                  f"the workers' start is inside the timed cell; load average {load[2]:.2f} after")
    rows = [steady, steady.aa(f"A/A control: {trials} trials in the kernel vs themselves"), shipped, first]
    for row in rows:
        print(f"- {row.name}: {row.note}" if row.note else f"- {row.name}", flush=True)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    main(**vars(parser.parse_args()))
