"""A team store (issue #27): a replay from S3 on loopback vs the fit it replaces, and what an
unreachable store adds to a fit. Both against the plain alternative in the same run, with an
A/A control (the baseline against itself, same rounds).

1. CI's installation (its own key) fits the FD001 MLP with ``--cache`` and shares it through a
   moto S3 server on 127.0.0.1. Each subject round is a laptop seen fresh (an empty ``.repro``,
   another key, a trust file naming ci): the fit cell replays CI's state from S3, every byte
   verified. The baseline trains the same cell (``%%repro_fit model``). Goal ≥ 50× faster.
2. A short fit cell (1 epoch of 4 batches: the fit's own noise small next to what is measured)
   with ``--cache`` and a team store that refuses connections, named afresh each round (a new
   client, as at kernel start; an empty ``.repro``) vs the cell with ``--cache`` and no team
   store. Goal: ≤ 1 s added, bounded by ``team_timeout`` (2 s).

Run: ``python benchmarks/bench_team_store.py [EPOCHS] [REPEAT] [replay|unreachable]`` (both by
default); prints the CPU and the rows.
"""
from __future__ import annotations

import datetime
import os
import socket
import statistics
import sys
import tempfile

from common import data_dir, interleaved, user_shell

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from bench_fit import FIT, PREPARE, run  # noqa: E402
from team_store import new_bucket, s3_options, start_s3  # noqa: E402


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0] if names else 'unknown CPU'}, {os.cpu_count()} cores"


def report(ip, source: str):
    """Run a fit cell as a notebook does (its output to a buffer); its ``FitReport``."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        result = ip.run_cell(source, silent=False, store_history=False)
    result.raise_error()
    return result.result


def configure(ip, **options) -> None:
    for name, value in options.items():
        run(ip, f"%config ReproMagics.{name} = {value!r}")


def replay_vs_fit(ip, endpoint: str, epochs: int, repeat: int):
    """Row 1: the fit replayed from S3 by a fresh installation vs the fit trained."""
    from jupyter_repro.store.keys import Identity

    scratch = tempfile.mkdtemp(prefix="repro-bench-team-")
    ci_key, laptop_key = os.path.join(scratch, "ci.key"), os.path.join(scratch, "laptop.key")
    trust = os.path.join(scratch, "repro-trust.json")
    with open(trust, "w") as handle:
        handle.write('{"trusted": {"ci": "%s"}}' % Identity(ci_key).public)
    session = ip.magics_manager.registry["ReproMagics"].session
    session.team_options = s3_options(endpoint)  # moto's endpoint (a kernel would take AWS_ENDPOINT_URL)
    url = new_bucket(endpoint)
    configure(ip, store=tempfile.mkdtemp(dir=scratch), key_file=ci_key, team_store=url)
    fit = FIT.format(epochs=epochs)
    out = run(ip, "%%repro_fit model --cache\n" + fit)          # CI trains and shares
    configure(ip, key_file=laptop_key, trust_file=trust)
    verdicts = []

    def replay():
        configure(ip, store=tempfile.mkdtemp(dir=scratch))      # a laptop with nothing local
        verdicts.append(str(report(ip, "%%repro_fit model --cache\n" + fit).verdict))

    def train():
        run(ip, "%%repro_fit model\n" + fit)

    row = interleaved(f"replay from the team store (moto S3 on loopback) vs the fit it replaces "
                      f"(FD001 MLP, {epochs} epochs)", replay, train, repeat, warmup=1,
                      goal="≤ 0.02 (≥ 50× faster)", control=train)
    row.note = (f"every subject round replayed: {all('replayed — computed by ci' in v for v in verdicts)} "
                f"({verdicts[-1]}); {1 / row.ratio:,.0f}× faster (median)")
    print(row.note)
    return [row, row.aa(f"A/A control: the trained fit vs itself in the same rounds ({epochs} epochs)")], out


SHORT = "history = model.fit(X_fit[:128], y_fit[:128], epochs=1, batch_size=32, verbose=0)"


def unreachable_cost(ip, repeat: int):
    """Row 2: a short fit with --cache under an unreachable team store vs with none."""
    with socket.socket() as probe:  # a loopback port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    scratch = tempfile.mkdtemp(prefix="repro-bench-down-")
    session = ip.magics_manager.registry["ReproMagics"].session
    fit = "%%repro_fit model --cache\n" + SHORT
    notes, rounds = [], iter(range(10**6))

    def down():
        session.team_options = s3_options(endpoint)
        configure(ip, store=tempfile.mkdtemp(dir=scratch), team_store=f"s3://nowhere-{next(rounds)}/repro")
        notes.append(report(ip, fit).notes)

    def plain():
        session.team_store = ""
        configure(ip, store=tempfile.mkdtemp(dir=scratch))
        run(ip, fit)

    row = interleaved("`--cache` fit with an unreachable team store vs with none (FD001 MLP, 1 epoch of 4 batches)",
                      down, plain, repeat, warmup=1, goal="≤ 1 s added (bounded by team_timeout, 2 s)", control=plain)
    added = statistics.median(s - b for s, b in zip(row.subject, row.baseline))
    said = all(any("not shared" in n for n in each) for each in notes)
    row.note = (f"{added * 1e3:+,.0f} ms added per fit (median of the pairs; A/A "
                f"{statistics.median(c - b for c, b in zip(row.control, row.baseline)) * 1e3:+,.0f} ms); "
                f"every such fit trained and said what was not shared: {said}")
    print(row.note)
    return [row, row.aa("A/A control: the short fit with no team store vs itself"),
            named_before(ip, session, endpoint, scratch, fit, repeat)]


def named_before(ip, session, endpoint, scratch, fit, repeat):
    """Row 3: as row 2, but each store named before the timed cell, its client made, as when
    the kernel's config names it at start: what every fit pays, not the first one."""
    from common import Comparison, timed_both

    rounds, subject, baseline = iter(range(10**6, 2 * 10**6)), [], []

    def name_down():
        session.team_options = s3_options(endpoint)
        configure(ip, store=tempfile.mkdtemp(dir=scratch), team_store=f"s3://nowhere-{next(rounds)}/repro")
        store = session._opened(session.team_store, session.team_timeout, session.team_options)
        store._pool.submit(lambda: None).result()  # its client made, in the background, as at kernel start

    def name_none():
        session.team_store = ""
        configure(ip, store=tempfile.mkdtemp(dir=scratch))

    for i in range(repeat + 1):
        for prepare, times in ((name_down, subject), (name_none, baseline))[::1 if i % 2 else -1]:
            prepare()
            times.append(timed_both(lambda: report(ip, fit)))
    row = Comparison("the same, the store named before the cell (its client made, as at kernel start)",
                     [t[0] for t in subject[1:]], [t[0] for t in baseline[1:]], "≤ 1 s added")
    row.note = f"{statistics.median(s - b for s, b in zip(row.subject, row.baseline)) * 1e3:+,.0f} ms added per fit"
    print(row, "\n" + row.note, flush=True)
    return row


def main(epochs: int = 20, repeat: int = 5, only: str = ""):
    print(f"bench_team_store: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu_model()}")
    import logging

    server, endpoint = start_s3()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    try:
        ip = user_shell(tempfile.mkdtemp(prefix="repro-bench-"))
        run(ip, "%repro_seed 42")
        run(ip, PREPARE.format(data_dir=data_dir()))
        run(ip, "%repro_snapshot model")
        rows = replay_vs_fit(ip, endpoint, epochs, repeat)[0] if only in ("", "replay") else []
        rows += unreachable_cost(ip, 2 * repeat + 1) if only in ("", "unreachable") else []
    finally:
        server.stop()
    print()
    for row in rows:
        print(row.row(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"))
    for row in rows:
        if row.note:
            print(f"- {row.name}: {row.note}")
    return rows


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]), *sys.argv[3:4])
